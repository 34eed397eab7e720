"""The screened dual, the sample's warm start and the CP-SAT finish of the portfolio solver."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy.optimize import linprog
from scipy.sparse import csr_matrix

from decisions.engine import portfolio
from decisions.engine.portfolio import solve_portfolio


def campaign(rng, n, k, m):
    value = rng.normal(1, 1, size=(n, k))
    value[:, 0] = 0.0
    usage = rng.uniform(0, 1, size=(m, n, k))
    usage[:, :, 0] = 0.0
    limit = rng.uniform(0.1, 0.3, size=m) * n
    return value, usage, limit


def lp_value(value, usage, limit):
    n, k = value.shape
    assign = csr_matrix((np.ones(n * k), (np.repeat(np.arange(n), k), np.arange(n * k))))
    result = linprog(
        -value.reshape(-1),
        A_ub=usage.reshape(len(limit), -1),
        b_ub=limit,
        A_eq=assign,
        b_eq=np.ones(n),
        bounds=(0, 1),
        method="highs",
    )
    return -result.fun


def brute_force(value, usage, limit):
    n, k = value.shape
    rows = np.arange(n)
    best = -np.inf
    for combo in itertools.product(range(k), repeat=n):
        choice = np.array(combo)
        if np.all(usage[:, rows, choice].sum(axis=1) <= limit + 1e-9):
            best = max(best, float(value[rows, choice].sum()))
    return best


@pytest.mark.parametrize("seed", range(3))
def test_the_screen_is_exact_inside_its_box(seed):
    rng = np.random.default_rng(seed)
    value, usage, limit = campaign(rng, 3000, 6, 4)
    problem = portfolio._Problem(value, usage, limit, np.ones(value.shape, dtype=bool))
    center = rng.uniform(0.2, 1.0, size=4)
    radius = 0.05 * center
    box, total, _, _ = portfolio._screen_all(problem, center, radius)
    assert 0 < len(box.rest) < 3000  # some customers are fixed, some are not
    assert total == pytest.approx(problem.best_response(center)[0], rel=1e-12)
    for _ in range(5):
        inside = center + rng.uniform(-1, 1, size=4) * radius
        whole, grad, _ = problem.best_response(inside)
        screened, grad_screened, _ = box.part.best_response(inside)
        assert box.fixed_value + screened == pytest.approx(whole, rel=1e-12, abs=1e-9)
        np.testing.assert_allclose(grad_screened, grad, rtol=1e-10, atol=1e-8)
        nested = portfolio._screen_within(box, inside, radius / 4)
        assert set(nested.rest) <= set(box.rest)
        probe = inside + rng.uniform(-1, 1, size=4) * radius / 4
        if np.all(probe >= nested.lo) and np.all(probe <= nested.hi):
            deep = nested.fixed_value + nested.part.best_response(probe)[0]
            assert deep == pytest.approx(problem.best_response(probe)[0], rel=1e-12)


@pytest.mark.parametrize("seed", range(3))
def test_a_sampled_start_still_reaches_the_lp_relaxation(seed):
    rng = np.random.default_rng(10 + seed)
    value, usage, limit = campaign(rng, 4000, 5, 3)
    relaxation = lp_value(value, usage, limit)
    # sample=500: the solver starts from a 500-customer sample's prices and screens
    solution = solve_portfolio(value, usage, limit, sample=500, exact_size=0, residual_seconds=0)
    assert solution.status in {"optimal", "feasible"}
    assert solution.bound >= relaxation - 1e-7 * abs(relaxation)  # a bound really bounds
    assert solution.bound == pytest.approx(relaxation, rel=1e-7)
    assert solution.gap < 1e-3
    assert np.all(solution.usage <= limit * (1 + 1e-9))
    assert 0 < solution.passes < 100


def test_tiny_instances_through_the_lagrangian_path_bracket_the_optimum():
    rng = np.random.default_rng(7)
    for _ in range(40):
        n, k, m = int(rng.integers(2, 7)), int(rng.integers(2, 4)), int(rng.integers(1, 3))
        value, usage, limit = campaign(rng, n, k, m)
        best = brute_force(value, usage, limit)
        solution = solve_portfolio(value, usage, limit, exact_size=0, residual_seconds=0, sample=1)
        assert solution.bound >= best - 1e-9
        assert solution.objective <= best + 1e-9
        rows = np.arange(n)
        assert np.all(usage[:, rows, solution.choice].sum(axis=1) <= limit + 1e-9)


def test_integral_instances_are_finished_by_cp_sat_and_match_brute_force():
    rng = np.random.default_rng(8)
    for _ in range(25):
        n, k, m = int(rng.integers(2, 6)), int(rng.integers(2, 4)), int(rng.integers(1, 3))
        value = rng.integers(-3, 10, size=(n, k)).astype(float)
        usage = rng.integers(0, 6, size=(m, n, k)).astype(float)
        usage[:, :, 0] = 0
        limit = rng.integers(0, 3 * n, size=m).astype(float)
        problem = portfolio._Problem(value, usage, limit, np.ones((n, k), dtype=bool))
        assert portfolio._integral_scales(problem, np.arange(n)) == 1
        solution = solve_portfolio(value, usage, limit)
        assert solution.status == "optimal"
        assert solution.objective == brute_force(value, usage, limit)


def test_decimal_values_are_scaled_for_cp_sat_and_floats_go_to_scip():
    value = np.array([[0.0, 4.5], [0.0, 2.25]])
    usage = np.array([[[0.0, 1.0], [0.0, 1.0]]])
    problem = portfolio._Problem(value, usage, np.array([1.0]), np.ones((2, 2), dtype=bool))
    assert portfolio._integral_scales(problem, np.arange(2)) == 100
    solution = solve_portfolio(value, usage, [1.0])
    assert solution.status == "optimal" and solution.objective == 4.5
    floating = portfolio._Problem(value, usage * 0.3, np.array([0.3]), np.ones((2, 2), dtype=bool))
    assert portfolio._integral_scales(floating, np.arange(2)) is None
