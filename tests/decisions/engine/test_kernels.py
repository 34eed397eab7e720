"""The solver's compiled passes give what the plain NumPy they replace gives.

Each kernel is checked against a NumPy reference written the obvious way, on float32 and
float64 inputs, with masks, with exact ties (integer data) and with read-only memory-mapped
arrays (how distributed runs read their chunks).
"""

from __future__ import annotations

import numpy as np
import pytest

from decisions.engine import kernels
from decisions.engine.portfolio import _Problem


def instance(rng, n, k, m, dtype, *, ties=False, masked=False):
    if ties:  # small integers: many exact ties between actions
        value = rng.integers(-3, 4, size=(n, k)).astype(dtype)
        usage = rng.integers(-2, 3, size=(m, n, k)).astype(dtype)
    else:
        value = rng.normal(0, 10, size=(n, k)).astype(dtype)
        usage = rng.normal(0, 1, size=(m, n, k)).astype(dtype)
    allowed = rng.random((n, k)) < 0.7 if masked else np.ones((n, k), dtype=bool)
    allowed[np.arange(n), rng.integers(0, k, size=n)] = True  # one allowed action at least
    return value, usage, allowed


def reference_scores(value, usage, allowed, prices):
    scores = value.astype(np.float64)
    for i, price in enumerate(prices):
        if price:
            scores = scores - price * usage[i].astype(np.float64)
    return np.where(allowed, scores, -np.inf)


CASES = [
    pytest.param(np.float32, False, False, id="float32"),
    pytest.param(np.float64, False, True, id="float64-masked"),
    pytest.param(np.float32, True, True, id="ties-masked"),
    pytest.param(np.float64, True, False, id="ties"),
]


@pytest.mark.parametrize(("dtype", "ties", "masked"), CASES)
def test_the_best_response_is_numpys_argmax_with_the_first_best_action_on_ties(dtype, ties, masked):
    rng = np.random.default_rng(4)
    value, usage, allowed = instance(rng, 3000, 6, 4, dtype, ties=ties, masked=masked)
    prices = np.array([0.5, 0.0, 2.0, 1.0]) if ties else rng.uniform(0, 3, size=4)
    choice, used = np.empty(3000, dtype=np.int64), np.zeros(4)
    total = kernels.respond(
        value, usage, allowed, bool(allowed.all()), prices, 0, 3000, choice, used
    )

    scores = reference_scores(value, usage, allowed, prices)
    expected = np.argmax(scores, axis=1)
    assert np.array_equal(choice, expected)
    rows = np.arange(3000)
    assert total == pytest.approx(scores[rows, expected].sum(), rel=1e-12)
    assert np.allclose(used, usage[:, rows, expected].astype(np.float64).sum(axis=1), atol=1e-9)
    assert allowed[rows, choice].all()


@pytest.mark.parametrize(("dtype", "ties", "masked"), CASES)
def test_the_screen_fixes_only_customers_no_price_in_the_box_moves(dtype, ties, masked):
    rng = np.random.default_rng(5)
    n, k, m = 2000, 5, 3
    value, usage, allowed = instance(rng, n, k, m, dtype, ties=ties, masked=masked)
    center, radius = np.array([1.0, 0.5, 0.0]), np.array([0.2, 0.1, 0.3])
    spread = (usage.max(axis=2) - usage.min(axis=2)).astype(np.float32)
    free, choice = np.zeros(n, dtype=bool), np.empty(n, dtype=np.int64)
    used, fixed_used = np.zeros(m), np.zeros(m)
    total, fixed_value = kernels.screen(
        value, usage, allowed, bool(allowed.all()), spread, center, radius,
        0, n, free, choice, used, fixed_used,
    )  # fmt: skip

    scores = reference_scores(value, usage, allowed, center)
    best = np.argmax(scores, axis=1)
    assert np.array_equal(choice, best)
    rows = np.arange(n)
    assert total == pytest.approx(scores[rows, best].sum(), rel=1e-12)
    ordered = np.sort(scores, axis=1)
    with np.errstate(invalid="ignore"):
        lead = ordered[:, -1] - ordered[:, -2]
    reach = radius @ spread + 1e-9 * (1.0 + np.abs(ordered[:, -1]))
    assert np.array_equal(free, ~(lead > reach))
    fixed = ~free
    assert 0 < fixed.sum() < n
    assert fixed_value == pytest.approx(value[rows[fixed], best[fixed]].sum(dtype=np.float64))
    assert np.allclose(fixed_used, usage[:, rows[fixed], best[fixed]].sum(axis=1), atol=1e-9)
    # What "fixed" promises: no price within the box changes those customers' best action.
    for _ in range(20):
        prices = np.maximum(0.0, center + rng.uniform(-1, 1, size=m) * radius)
        moved = np.argmax(reference_scores(value, usage, allowed, prices), axis=1)
        assert np.array_equal(moved[fixed], best[fixed])


@pytest.mark.parametrize(("dtype", "ties", "masked"), CASES)
def test_survey_least_use_and_spread_match_numpy(dtype, ties, masked):
    rng = np.random.default_rng(6)
    n, k, m = 1500, 4, 3
    _, usage, allowed = instance(rng, n, k, m, dtype, ties=ties, masked=masked)
    weight = np.array([0.5, 1.0, 0.25])
    low, thrifty = np.zeros(m), np.zeros(m)
    spread = np.empty((m, n), dtype=np.float32)
    kernels.survey(usage, allowed, bool(allowed.all()), weight, 0, n, low, thrifty, spread)

    masked_usage = np.where(allowed[None], usage.astype(np.float64), np.inf)
    assert np.allclose(low, masked_usage.min(axis=2).sum(axis=1))
    relative = np.where(allowed, np.tensordot(weight, usage.astype(np.float64), axes=1), np.inf)
    cheapest = np.argmin(relative, axis=1)
    assert np.allclose(thrifty, usage[:, np.arange(n), cheapest].sum(axis=1, dtype=np.float64))
    assert np.array_equal(spread, (usage.max(axis=2) - usage.min(axis=2)).astype(np.float32))

    used = np.zeros(m)
    least = kernels.least_use(usage, allowed, bool(allowed.all()), weight, 0, n, used)
    assert least == pytest.approx(relative.min(axis=1).sum(), rel=1e-12, abs=1e-9)
    assert np.allclose(used, thrifty)


def test_totals_and_gather_match_numpy_indexing():
    rng = np.random.default_rng(7)
    value, usage, allowed = instance(rng, 1000, 5, 3, np.float32, masked=True)
    choice = rng.integers(0, 5, size=1000)
    used = np.zeros(3)
    objective = kernels.totals(value, usage, choice, 0, 1000, used)
    rows = np.arange(1000)
    assert objective == pytest.approx(value[rows, choice].sum(dtype=np.float64), rel=1e-12)
    assert np.allclose(used, usage[:, rows, choice].sum(axis=1, dtype=np.float64))

    picked = np.array([999, 3, 3, 0, 512])  # any order, repeats allowed
    out = (np.empty((5, 5), np.float32), np.empty((3, 5, 5), np.float32), np.empty((5, 5), bool))
    kernels.gather(value, usage, allowed, picked, *out)
    assert np.array_equal(out[0], value[picked])
    assert np.array_equal(out[1], usage[:, picked, :])
    assert np.array_equal(out[2], allowed[picked])


def test_read_only_memory_mapped_chunks_are_scored_like_arrays_in_memory(tmp_path):
    rng = np.random.default_rng(8)
    value, usage, allowed = instance(rng, 800, 4, 2, np.float32, masked=True)
    mapped = []
    for name, array in (("value", value), ("usage", usage), ("allowed", allowed)):
        np.save(tmp_path / f"{name}.npy", array)
        mapped.append(np.load(tmp_path / f"{name}.npy", mmap_mode="r"))
    prices = np.array([1.5, 0.25])
    in_memory = _Problem(value, usage, np.array([10.0, 20.0]), allowed).best_response(prices)
    on_disk = _Problem(mapped[0], mapped[1], np.array([10.0, 20.0]), np.asarray(mapped[2]))
    result = on_disk.best_response(prices)
    assert result[0] == in_memory[0]
    assert np.array_equal(result[1], in_memory[1])
    assert np.array_equal(result[2], in_memory[2])


@pytest.mark.parametrize(("dtype", "ties", "masked"), CASES)
def test_the_repairs_cheapest_relief_is_the_numpy_ratio_argmin(dtype, ties, masked):
    rng = np.random.default_rng(9)
    n, k, m = 2500, 6, 3
    value, usage, allowed = instance(rng, n, k, m, dtype, ties=ties, masked=masked)
    choice = np.array([rng.choice(np.nonzero(row)[0]) for row in allowed], dtype=np.int64)
    weight = np.array([1.0, 0.0, 0.25]) if ties else rng.uniform(0, 1, size=m)
    best_ratio, best_action = np.empty(n), np.empty(n, dtype=np.int64)
    kernels.repair_ratios(
        value, usage, allowed, bool(allowed.all()), weight, choice, 0, n, best_ratio, best_action
    )

    # The NumPy the repair used before: relief by tensordot, ratio, first smallest.
    rows = np.arange(n)
    use = usage.astype(np.float64)
    relief = -np.tensordot(weight, use - use[:, rows, choice][:, :, None], axes=1)
    loss = value.astype(np.float64)[rows, choice][:, None] - value
    ratio = np.full(relief.shape, np.inf)
    np.divide(np.maximum(loss, 0.0), relief, out=ratio, where=relief > 1e-15)
    ratio[~allowed] = np.inf
    ratio[rows, choice] = np.inf
    expected = np.argmin(ratio, axis=1)
    np.testing.assert_allclose(best_ratio, ratio[rows, expected], rtol=1e-12)
    finite = np.isfinite(best_ratio)
    assert finite.any() and not finite.all()  # some customers cannot relieve anything
    assert np.array_equal(best_action[finite], expected[finite])


@pytest.mark.parametrize(("dtype", "ties", "masked"), CASES)
def test_the_fills_candidates_are_the_best_priced_actions_worth_more(dtype, ties, masked):
    rng = np.random.default_rng(11)
    n, k, m = 2000, 5, 3
    value, usage, allowed = instance(rng, n, k, m, dtype, ties=ties, masked=masked)
    choice = np.array([rng.choice(np.nonzero(row)[0]) for row in allowed], dtype=np.int64)
    prices = np.array([0.5, 0.0, 2.0]) if ties else rng.uniform(0, 3, size=m)
    target, gain = np.empty(n, dtype=np.int64), np.empty(n)
    kernels.fill_candidates(
        value, usage, allowed, bool(allowed.all()), prices, choice, 0, n, target, gain
    )

    rows = np.arange(n)
    more = value.astype(np.float64) - value.astype(np.float64)[rows, choice][:, None]
    preference = np.where(more > 1e-12, reference_scores(value, usage, allowed, prices), -np.inf)
    pick = np.argmax(preference, axis=1)
    some = np.isfinite(preference[rows, pick])
    assert some.any() and not some.all()
    assert np.array_equal(target, np.where(some, pick, -1))
    assert np.array_equal(gain[some], more[rows, pick][some])


def test_the_fill_takes_each_move_that_still_fits_in_order():
    rng = np.random.default_rng(12)
    n, k, m = 400, 4, 2
    usage = rng.normal(0, 1, size=(m, n, k))
    choice = rng.integers(0, k, size=n).astype(np.int64)
    customers = rng.permutation(n)[:300].astype(np.int64)
    target = rng.integers(0, k, size=300).astype(np.int64)
    ceiling = np.array([3.0, 1.0])
    used, moved = np.array([2.0, 0.5]), np.zeros(300, dtype=bool)
    taken = kernels.fill_moves(usage, ceiling, used, customers, target, choice, moved)

    expected_used, expected = np.array([2.0, 0.5]), []
    for n_, a in zip(customers, target, strict=True):
        delta = usage[:, n_, a] - usage[:, n_, choice[n_]]
        expected.append(bool(np.all(expected_used + delta <= ceiling)))
        if expected[-1]:
            expected_used = expected_used + delta
    assert moved.tolist() == expected and taken == sum(expected) and 0 < taken < 300
    np.testing.assert_allclose(used, expected_used, rtol=1e-12)
