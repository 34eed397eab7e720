"""The portfolio solver: exact on tiny instances, a bound that really bounds, infeasibility."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy.optimize import linprog
from scipy.sparse import lil_matrix

from decisions.engine import portfolio
from decisions.engine.portfolio import solve_portfolio


def brute_force(value, usage, limit, allowed):
    n, k = value.shape
    best = -np.inf
    rows = np.arange(n)
    for combo in itertools.product(range(k), repeat=n):
        choice = np.array(combo)
        if not allowed[rows, choice].all():
            continue
        if np.all(usage[:, rows, choice].sum(axis=1) <= limit + 1e-9):
            best = max(best, float(value[rows, choice].sum()))
    return best


def random_instance(rng, n, k, m):
    value = rng.normal(1, 1, size=(n, k))
    value[:, 0] = 0.0  # action 0 is "nothing": no value, no use
    usage = rng.uniform(0, 1, size=(m, n, k))
    usage[:, :, 0] = 0.0
    limit = rng.uniform(0.1, 0.4, size=m) * n
    return value, usage, limit


def lp_relaxation(value, usage, limit):
    n, k = value.shape
    a_eq = lil_matrix((n, n * k))
    for i in range(n):
        a_eq[i, i * k : (i + 1) * k] = 1
    result = linprog(
        -value.reshape(-1),
        A_ub=usage.reshape(len(limit), -1),
        b_ub=limit,
        A_eq=a_eq.tocsr(),
        b_eq=np.ones(n),
        bounds=(0, 1),
        method="highs",
    )
    return -result.fun


def test_tiny_instances_match_brute_force():
    rng = np.random.default_rng(0)
    for _ in range(150):
        n, k, m = int(rng.integers(1, 6)), int(rng.integers(1, 4)), int(rng.integers(0, 3))
        value = rng.normal(size=(n, k))
        usage = rng.uniform(0, 1, size=(m, n, k))
        limit = rng.uniform(0, n * 0.6, size=m)
        allowed = rng.random((n, k)) > 0.2
        allowed[np.arange(n), rng.integers(0, k, n)] = True
        best = brute_force(value, usage, limit, allowed)
        solution = solve_portfolio(value, usage, limit, allowed=allowed)
        if best == -np.inf:
            assert solution.status == "infeasible"
            continue
        assert solution.status == "optimal"
        assert solution.objective == pytest.approx(best, abs=1e-9)
        assert solution.bound >= best - 1e-9
        assert allowed[np.arange(n), solution.choice].all()


@pytest.mark.parametrize("seed", range(6))
def test_the_bound_bounds_and_the_dual_is_the_lp_relaxation(seed):
    rng = np.random.default_rng(100 + seed)
    value, usage, limit = random_instance(rng, 300, 5, 3)
    exact = solve_portfolio(value, usage, limit)  # small: SCIP proves the optimum
    assert exact.status == "optimal"
    heuristic = solve_portfolio(value, usage, limit, exact_size=0, residual_seconds=0)
    assert heuristic.bound >= exact.objective - 1e-6
    assert heuristic.objective <= exact.objective + 1e-6
    relaxation = lp_relaxation(value, usage, limit)
    assert heuristic.bound >= relaxation - 1e-9  # no bound can beat the LP relaxation
    assert heuristic.bound == pytest.approx(relaxation, rel=1e-5)  # and the dual reaches it
    assert heuristic.gap == pytest.approx(
        (heuristic.bound - heuristic.objective) / abs(heuristic.bound)
    )
    assert heuristic.gap < 0.01
    assert np.all(heuristic.usage <= limit + 1e-6)
    assert np.all(heuristic.prices >= 0)


def test_a_limit_nothing_can_meet_is_named():
    value = np.ones((4, 2))
    usage = np.ones((2, 4, 2))  # every action uses 1 of each limit
    solution = solve_portfolio(value, usage, np.array([10.0, 3.0]))
    assert solution.status == "infeasible"
    assert solution.infeasible_limits == [1]
    assert "on its own" in solution.message


def test_contradicting_limits_are_named_without_an_exception():
    rng = np.random.default_rng(3)
    n = 50_000  # too big for the exact solver: the Farkas certificate must find it
    value = rng.normal(size=(n, 2))
    offer = np.zeros((n, 2))
    offer[:, 1] = 1.0
    # at most 100 offers, and at least 200 offers (a >= limit passed negated)
    usage = np.stack([offer, -offer, np.zeros((n, 2))])
    solution = solve_portfolio(value, usage, np.array([100.0, -200.0, 5.0]))
    assert solution.status == "infeasible"
    assert solution.infeasible_limits == [0, 1]
    assert "contradict" in solution.message


def test_masks_and_unused_limits():
    rng = np.random.default_rng(4)
    value, usage, limit = random_instance(rng, 2000, 4, 2)
    usage = np.concatenate([usage, np.zeros((1, 2000, 4))])  # a limit nothing uses
    limit = np.append(limit, 0.0)
    allowed = rng.random((2000, 4)) > 0.3
    allowed[:, 0] = True
    solution = solve_portfolio(value, usage, limit, allowed=allowed, exact_size=0)
    assert solution.status in {"optimal", "feasible"}
    assert allowed[np.arange(2000), solution.choice].all()
    assert solution.usage[2] == 0
    no_mask = solve_portfolio(value, usage, limit, exact_size=0)
    assert no_mask.bound >= solution.bound - 1e-9  # masking can only lower the optimum


def test_a_customer_without_allowed_actions_is_reported():
    allowed = np.array([[True, False], [False, False]])
    solution = solve_portfolio(np.ones((2, 2)), np.zeros((1, 2, 2)), [1.0], allowed=allowed)
    assert solution.status == "infeasible"
    assert "customer 1" in solution.message


def test_no_limits_gives_everyone_their_best_action():
    value = np.array([[0.0, 2.0, 1.0], [3.0, 0.0, -1.0]])
    solution = solve_portfolio(value, np.zeros((0, 2, 3)), np.zeros(0))
    assert list(solution.choice) == [1, 0]
    assert solution.status == "optimal" and solution.objective == 5.0


def test_float32_inputs_at_scale():
    rng = np.random.default_rng(5)
    n = 60_000
    value = rng.normal(1, 1, size=(n, 8)).astype(np.float32)
    value[:, 0] = 0
    usage = rng.uniform(0, 1, size=(5, n, 8)).astype(np.float32)
    usage[:, :, 0] = 0
    limit = rng.uniform(0.1, 0.3, size=5) * n
    solution = solve_portfolio(value, usage, limit, residual_seconds=1.0)
    assert solution.status in {"optimal", "feasible"}
    assert solution.gap < 1e-3
    assert np.all(solution.usage <= limit * (1 + 1e-6))


def generalised_assignment(rng, jobs, agents):
    """A GAP as a portfolio: each agent is an action and a capacity limit only it uses;
    the capacities leave 3% room over a random assignment (so a feasible one exists)."""
    cost = rng.integers(10, 50, size=(jobs, agents)).astype(float)
    weight = rng.integers(5, 25, size=(jobs, agents)).astype(float)
    usage = np.zeros((agents, jobs, agents))
    usage[np.arange(agents)[:, None], np.arange(jobs)[None, :], np.arange(agents)[:, None]] = (
        weight.T
    )
    planted = rng.integers(0, agents, size=jobs)
    load = np.bincount(planted, weights=weight[np.arange(jobs), planted], minlength=agents)
    return -cost, usage, np.ceil(1.03 * np.maximum(load, weight.max()))


def test_many_tight_limits_are_met_by_rounding_the_lp(monkeypatch):
    # 40 tight limits: from the bundle's prices the repair found no feasible choice in
    # 8 s (and on Yagiura's e801600, 80 limits, the bundle had not even converged).
    rng = np.random.default_rng(7)
    value, usage, limit = generalised_assignment(rng, 800, 40)
    relaxations = []
    solve_lp = portfolio._lp_relaxation
    monkeypatch.setattr(
        portfolio, "_lp_relaxation", lambda *a: relaxations.append(solve_lp(*a)) or relaxations[-1]
    )
    solution = solve_portfolio(value, usage, limit, time_limit=8.0)
    assert relaxations and relaxations[0] is not None  # the LP took over
    assert solution.status in ("feasible", "optimal")
    rows = np.arange(800)
    assert np.all(usage[:, rows, solution.choice].sum(axis=1) <= limit + 1e-9)
    assert solution.objective == pytest.approx(value[rows, solution.choice].sum())
    relaxation = lp_relaxation(value, usage, limit)
    assert solution.bound >= relaxation - 1e-6  # a bound no better than the LP's
    assert solution.bound == pytest.approx(relaxation, rel=1e-6)  # and, converged, it
    assert solution.gap < 0.02
    assert np.all(solution.prices >= 0)


def milp_optimum(value, usage, limit, allowed):
    """The optimum by HiGHS's MILP (an independent exact solver)."""
    from scipy.optimize import Bounds, LinearConstraint, milp

    n, k = value.shape
    a_eq = np.zeros((n, n * k))
    for i in range(n):
        a_eq[i, i * k : (i + 1) * k] = 1
    result = milp(
        -np.where(allowed, value, 0.0).reshape(-1),
        constraints=[
            LinearConstraint(a_eq, 1, 1),
            LinearConstraint(usage.reshape(len(limit), -1), -np.inf, limit),
        ],
        integrality=np.ones(n * k),
        bounds=Bounds(0, allowed.reshape(-1).astype(float)),
    )
    return -result.fun if result.status == 0 else None


@pytest.mark.parametrize("seed", range(3))
def test_many_limits_with_masks_and_at_least_limits_reach_the_optimum(seed):
    # 34 limits (the LP can take over from the bundle or the repair); some are ">="
    # limits (passed negated), some actions are not allowed to some customers.
    rng = np.random.default_rng(40 + seed)
    n, k, m = 16, 3, 34
    value = rng.normal(1, 1, size=(n, k))
    usage = rng.uniform(0, 1, size=(m, n, k)) * (rng.random((m, n, k)) < 0.4)
    allowed = rng.random((n, k)) > 0.15
    planted = rng.integers(0, k, size=n)  # a feasible choice, for the limits' sizes
    allowed[np.arange(n), planted] = True
    planted_use = usage[:, np.arange(n), planted].sum(axis=1)
    limit = planted_use * 1.02 + 0.01
    at_least = np.arange(m) % 6 == 0  # at least 90% of what the planted choice uses
    usage[at_least] *= -1.0
    limit[at_least] = -0.9 * planted_use[at_least]
    best = milp_optimum(value, usage, limit, allowed)
    assert best is not None
    solution = solve_portfolio(value, usage, limit, allowed=allowed, time_limit=20.0)
    assert solution.status == "optimal"
    assert solution.objective == pytest.approx(best, abs=1e-7)
    assert solution.bound >= best - 1e-7
    rows = np.arange(n)
    assert allowed[rows, solution.choice].all()
    assert np.all(usage[:, rows, solution.choice].sum(axis=1) <= limit + 1e-9)


def correlated_mmkp(rng, classes, items, dimensions):
    """A multiple-choice multidimensional knapsack in the style of Khan's instances:
    integral weights, values correlated with them, each capacity half of what the
    heaviest choices would use (hard to prove optimal in seconds)."""
    weight = rng.integers(1, 100, size=(dimensions, classes, items)).astype(float)
    value = np.round(weight.sum(axis=0) * rng.uniform(0.8, 1.2, size=(classes, items)))
    limit = np.floor(0.5 * weight.max(axis=2).sum(axis=1))
    return value, weight, limit


def test_small_hard_instances_also_search_the_best_few_actions_at_the_prices(monkeypatch):
    # Unproven after the first exact search over everything, the solver searches cores
    # (each customer's best actions at the prices, and its action in the best choice so
    # far), then everything again; only searches over everything may lower the bound.
    rng = np.random.default_rng(11)
    value, usage, limit = correlated_mmkp(rng, 60, 10, 10)
    searched = []
    finish = portfolio._finish

    def recording(problem, customers, choice, seconds):
        found = finish(problem, customers, choice, seconds)
        searched.append((problem.allowed.copy(), choice.copy(), found))
        return found

    monkeypatch.setattr(portfolio, "_finish", recording)
    solution = solve_portfolio(value, usage, limit, time_limit=4.0)

    assert len(searched) >= 3
    everything = np.ones_like(value, dtype=bool)
    first, *cores, last = searched
    assert first[0].all() and last[0].all()
    assert first[2] is not None and not first[2][1]  # not proven: the cores ran
    rows = np.arange(60)
    sizes = []
    for mask, start, _ in cores:
        assert mask[rows, start].all()  # the best choice so far is in the core
        sizes.append(int(mask.sum(axis=1).max()))
        assert (mask & ~everything).sum() == 0
    assert sizes == sorted(sizes) and sizes[0] <= 3 and max(sizes) < 10
    # The answer: feasible, no worse than any search's, with a bound from the searches over
    # everything only (a core's own bound is below the best choice outside it).
    assert solution.status in ("feasible", "optimal")
    assert np.all(usage[:, rows, solution.choice].sum(axis=1) <= limit)
    assert solution.objective == pytest.approx(value[rows, solution.choice].sum())
    found = [s[2][0] for s in searched if s[2] is not None]
    assert solution.objective >= max(value[rows, c].sum() for c in found) - 1e-9
    dual_only = solve_portfolio(value, usage, limit, exact_size=0, residual_seconds=0)
    whole_bounds = [s[2][2] for s in (first, last) if s[2] is not None]
    assert solution.bound == pytest.approx(min([dual_only.bound, *whole_bounds]))
    assert solution.bound >= solution.objective


def test_a_core_missing_the_optimum_does_not_lower_the_bound(monkeypatch):
    # A core (each customer's two best actions at the prices) can miss the optimum: its
    # own optimum is then below the whole's, and reporting it as the bound would "prove"
    # a choice optimal that is not. Here the searches over everything find nothing in
    # time, so the bound can only be the dual's, and the choice is the core's optimum.
    rng = np.random.default_rng(3)
    for _ in range(300):
        value, usage, limit = random_instance(rng, 6, 4, 2)
        usage *= 4.0  # tight limits: the price-optimal actions do not fit
        dual = solve_portfolio(value, usage, limit, exact_size=0, residual_seconds=0)
        scores = value - np.einsum("m,mnk->nk", dual.prices, usage)
        core = np.argsort(np.argsort(-scores, axis=1), axis=1) < 2
        core[np.arange(6), dual.choice] = True  # the core keeps the heuristic's choice
        optimum = brute_force(value, usage, limit, np.ones_like(core))
        in_core = brute_force(value, usage, limit, core)
        if dual.objective + 1e-6 < in_core < optimum - 1e-6:
            break  # the core search improves on the heuristic, but misses the optimum
    else:
        pytest.fail("no instance whose core misses the optimum")
    finish = portfolio._finish
    monkeypatch.setattr(
        portfolio,
        "_finish",
        lambda problem, *a: None if problem.allowed.all() else finish(problem, *a),
    )
    monkeypatch.setattr(portfolio, "CORE_PLAN", ((2, 0.5),))
    solution = solve_portfolio(value, usage, limit, time_limit=2.0)
    assert solution.objective == pytest.approx(in_core)
    assert solution.bound >= optimum - 1e-9
    assert solution.bound == pytest.approx(dual.bound)
    assert solution.status == "feasible"


@pytest.mark.parametrize("data", ["integral", "fractional"])
def test_the_exact_search_matches_brute_force_around_fixed_customers(data):
    """The exact searches' models (CP-SAT on integral data, SCIP otherwise; both written
    straight into the solver's proto): masks, customers outside the search keeping their
    action and its use of the limits, actions worth nothing, limits nothing in the search
    uses, and infeasibility proven."""
    rng = np.random.default_rng(7)
    proven_infeasible = 0
    for trial in range(80):
        n, k, m = int(rng.integers(2, 6)), int(rng.integers(1, 4)), int(rng.integers(0, 3))
        value = rng.integers(-3, 6, size=(n, k)).astype(float)
        if trial % 10 == 0:
            value[:] = 0.0  # no objective at all: any feasible choice is optimal
        if data == "fractional":
            value += rng.uniform(0.01, 0.99, size=(n, k))
        usage = rng.integers(0, 4, size=(m, n, k)).astype(float)
        limit = rng.integers(0, 3 * n, size=m).astype(float)
        allowed = rng.random((n, k)) > 0.25
        allowed[np.arange(n), rng.integers(0, k, n)] = True
        choice = np.argmax(allowed, axis=1)
        free = np.sort(rng.choice(n, size=int(rng.integers(1, n + 1)), replace=False))
        problem = portfolio._Problem(value, usage, limit, allowed)
        scale = portfolio._integral_scales(problem, free)
        assert scale == 1 if data == "integral" else scale is None  # CP-SAT, else SCIP

        best, rows = -np.inf, np.arange(n)
        for combo in itertools.product(range(k), repeat=len(free)):
            candidate = choice.copy()
            candidate[free] = combo
            if allowed[rows, candidate].all() and np.all(
                usage[:, rows, candidate].sum(axis=1) <= limit
            ):
                best = max(best, float(value[free, candidate[free]].sum()))

        try:
            found = portfolio._finish(problem, free, choice, 5.0)
        except portfolio._ProvenInfeasible:
            assert best == -np.inf
            proven_infeasible += 1
            continue
        assert best > -np.inf
        improved, proven, bound = found
        assert proven
        kept = np.setdiff1d(rows, free)
        assert np.array_equal(improved[kept], choice[kept])
        assert allowed[rows, improved].all()
        assert np.all(usage[:, rows, improved].sum(axis=1) <= limit)
        assert value[free, improved[free]].sum() == pytest.approx(best, abs=1e-9)
        assert bound == pytest.approx(best, abs=1e-6)
    assert proven_infeasible > 0


def test_values_merely_near_a_scaled_integer_are_not_rounded_for_cp_sat():
    """CP-SAT takes integers: values are scaled by a power of ten only when that makes
    them integral, not when they are within a relative 1e-5 of it (4.50002 x 1000 =
    4500.02 used to pass, and CP-SAT then weighed 4,500)."""
    usage = np.ones((1, 2, 2))
    allowed = np.ones((2, 2), dtype=bool)
    value = np.array([[0.0, 4.50002], [0.0, 1.0]])
    problem = portfolio._Problem(value, usage, np.array([1.0]), allowed)
    assert portfolio._integral_scales(problem, np.arange(2)) is None
    value[0, 1] = 4.5
    assert portfolio._integral_scales(problem, np.arange(2)) == 10


@pytest.mark.parametrize("data", ["integral", "fractional"])
def test_the_residual_search_gives_scip_only_the_nearest_ties(monkeypatch, data):
    """Around a feasible choice of a large problem, the customers the prices leave nearly
    indifferent are searched exactly: up to ``exact_size`` pairs with CP-SAT (integral
    data), but only the nearest ``RESIDUAL_PAIRS`` with SCIP, whose root LP over thousands
    of near ties outlasted its time limit without improving anything."""
    rng = np.random.default_rng(11)
    value, usage, limit = random_instance(rng, 3000, 5, 3)
    if data == "integral":
        value, usage, limit = np.round(value * 20), np.round(usage * 20), np.round(limit * 20)
    monkeypatch.setattr(portfolio, "RESIDUAL_PAIRS", 100)
    calls = []
    finish = portfolio._finish

    def recording(problem, customers, choice, seconds):
        calls.append(int(problem.allowed[customers].sum()))
        return finish(problem, customers, choice, seconds)

    monkeypatch.setattr(portfolio, "_finish", recording)
    solution = solve_portfolio(value, usage, limit, exact_size=1000, tolerance=1e-12)
    assert solution.status in ("optimal", "feasible")
    assert np.all(usage[:, np.arange(3000), solution.choice].sum(axis=1) <= limit + 1e-9)
    assert calls
    if data == "integral":
        assert max(calls) == 1000  # the residual search: exact_size // K customers x K
    else:
        assert max(calls) <= 100
