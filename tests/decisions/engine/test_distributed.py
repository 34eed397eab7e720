"""The portfolio problem over chunks: the same answers as one process, from per-chunk sums."""

from __future__ import annotations

import numpy as np
import pytest

from decisions.engine.distributed import (
    LocalExecutor,
    chunk_choice,
    chunk_dual,
    chunk_write,
    solve_chunks,
)
from decisions.engine.portfolio import INFEASIBLE, solve_portfolio
from tests.decisions.engine.test_portfolio import brute_force, lp_relaxation, random_instance


def offers(n: int, seed: int, k: int = 6, m: int = 4) -> tuple[np.ndarray, ...]:
    """Offer portfolios: action 0 is "nothing"; the limits bind (about half of what every
    customer's best offer would use)."""
    rng = np.random.default_rng(seed)
    value = rng.gamma(2.0, 20.0, size=(n, k)) * rng.uniform(0.5, 1.5, size=(n, 1))
    value[:, 0] = 0.0
    usage = rng.uniform(0.2, 3.0, size=(m, n, k)) * rng.uniform(0.5, 2.0, size=(m, 1, k))
    usage[:, :, 0] = 0.0
    best = np.argmax(value, axis=1)
    limit = 0.5 * usage[:, np.arange(n), best].sum(axis=1)
    return value, usage, limit


def split(tmp_path, value, usage, allowed, parts: int) -> list[str]:
    n = len(value)
    edges = np.linspace(0, n, parts + 1).astype(int)
    folders = []
    for i in range(parts):
        rows = slice(edges[i], edges[i + 1])
        folder = tmp_path / f"chunk-{i}"
        chunk_write(folder, value[rows], usage[:, rows], allowed[rows])
        folders.append(str(folder))
    return folders


def choice_of(folders: list[str]) -> np.ndarray:
    return np.concatenate([chunk_choice(f) for f in folders])


def test_chunk_duals_add_up_to_the_whole_dual_function(tmp_path):
    value, usage, _ = offers(3000, seed=1)
    allowed = np.ones(value.shape, dtype=bool)
    allowed[::7, 2] = False
    folders = split(tmp_path, value, usage, allowed, 4)
    prices = np.array([0.3, 1.2, 0.0, 2.5])
    parts = [chunk_dual(f, prices.tolist()) for f in folders]
    scores = np.where(allowed, value - np.tensordot(prices, usage, axes=1), -np.inf)
    best = np.argmax(scores, axis=1)
    assert sum(p["value"] for p in parts) == pytest.approx(scores.max(axis=1).sum(), rel=1e-12)
    used = np.sum([p["used"] for p in parts], axis=0)
    np.testing.assert_allclose(used, usage[:, np.arange(3000), best].sum(axis=1), rtol=1e-12)


def test_tiny_instances_are_solved_to_the_brute_force_optimum(tmp_path):
    rng = np.random.default_rng(2)
    for trial in range(25):
        n, k, m = int(rng.integers(2, 7)), int(rng.integers(2, 4)), int(rng.integers(1, 3))
        value, usage, limit = random_instance(rng, n, k, m)
        allowed = rng.uniform(size=(n, k)) < 0.8
        allowed[:, 0] = True
        folders = split(tmp_path / str(trial), value, usage, allowed, 2)
        solution = solve_chunks(LocalExecutor(), folders, limit)
        optimum = brute_force(value, usage, limit, allowed)
        assert solution.objective == pytest.approx(optimum, abs=1e-9)
        assert solution.bound >= optimum - 1e-9
        choice = choice_of(folders)
        rows = np.arange(n)
        assert allowed[rows, choice].all()
        assert np.all(usage[:, rows, choice].sum(axis=1) <= limit + 1e-9)


def test_the_bound_really_bounds_and_the_choice_is_feasible(tmp_path):
    for seed in range(3):
        value, usage, limit = offers(2000, seed=seed)
        allowed = np.ones(value.shape, dtype=bool)
        folders = split(tmp_path / str(seed), value, usage, allowed, 3)
        solution = solve_chunks(LocalExecutor(), folders, limit, sample=200, residual_seconds=0.5)
        # The LP relaxation's optimum is at least the integer optimum; the dual bound is at
        # least the LP optimum.
        assert solution.bound >= lp_relaxation(value, usage, limit) - 1e-6
        choice = choice_of(folders)
        rows = np.arange(len(value))
        assert value[rows, choice].sum() == pytest.approx(solution.objective, rel=1e-12)
        np.testing.assert_allclose(usage[:, rows, choice].sum(axis=1), solution.usage, rtol=1e-9)
        assert np.all(solution.usage <= limit + 1e-6)
        assert solution.gap <= 1e-3
        assert solution.status in {"optimal", "feasible"}


def test_chunks_agree_with_the_single_process_solver(tmp_path):
    value, usage, limit = offers(40_000, seed=7)
    allowed = np.ones(value.shape, dtype=bool)
    allowed[np.random.default_rng(1).uniform(size=value.shape) < 0.1] = False
    allowed[:, 0] = True
    folders = split(tmp_path, value, usage, allowed, 5)
    chunked = solve_chunks(LocalExecutor(), folders, limit, sample=2000)
    whole = solve_portfolio(value, usage, limit, allowed=allowed, sample=2000)
    # Each is within its certified gap of the optimum, so of each other.
    assert chunked.objective <= whole.bound + 1e-9 * abs(whole.bound)
    assert whole.objective <= chunked.bound + 1e-9 * abs(chunked.bound)
    assert chunked.gap <= 1e-4
    np.testing.assert_allclose(chunked.prices, whole.prices, rtol=1e-2, atol=1e-6)
    assert chunked.residual > 0


def test_limits_nothing_can_meet_end_infeasible_naming_them(tmp_path):
    value, usage, limit = offers(500, seed=3)
    usage[1] += 1.0  # every action, "nothing" included, now uses limit 1
    limit[1] = 100.0
    folders = split(tmp_path, value, usage, np.ones(value.shape, dtype=bool), 2)
    solution = solve_chunks(LocalExecutor(), folders, limit)
    assert solution.status == INFEASIBLE
    assert solution.infeasible_limits == [1]


def test_a_customer_with_no_allowed_action_is_named(tmp_path):
    value, usage, limit = offers(100, seed=4)
    allowed = np.ones(value.shape, dtype=bool)
    allowed[73] = False
    folders = split(tmp_path, value, usage, allowed, 2)
    solution = solve_chunks(LocalExecutor(), folders, limit)
    assert solution.status == INFEASIBLE
    assert "customer 73" in solution.message


def test_masked_actions_are_never_chosen(tmp_path):
    value, usage, limit = offers(5000, seed=5)
    allowed = np.ones(value.shape, dtype=bool)
    allowed[:, 3] = False  # the most valuable offer for many, masked for everyone
    value[:, 3] += 1000.0
    folders = split(tmp_path, value, usage, allowed, 3)
    solution = solve_chunks(LocalExecutor(), folders, limit)
    assert solution.status in {"optimal", "feasible"}
    assert not np.any(choice_of(folders) == 3)
