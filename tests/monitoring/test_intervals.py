"""Wilson and Newcombe intervals against the worked examples of Newcombe (1998)."""

from __future__ import annotations

import pytest

from monitoring.intervals import newcombe_difference, wilson_interval


@pytest.mark.parametrize(
    ("k", "n", "low", "high"),
    [
        # Newcombe RG, Statistics in Medicine 17:857-872 (1998), table II, method 3.
        (81, 263, 0.2553, 0.3662),
        (15, 148, 0.0624, 0.1605),
        (0, 20, 0.0, 0.1611),
        (1, 29, 0.0061, 0.1718),
        (29, 29, 0.8830, 1.0),
    ],
)
def test_wilson_score_interval_matches_published_values(k, n, low, high):
    ci = wilson_interval(k, n)
    assert ci.rate == pytest.approx(k / n)
    assert (ci.low, ci.high) == (pytest.approx(low, abs=5e-5), pytest.approx(high, abs=5e-5))


@pytest.mark.parametrize(
    ("a", "b", "low", "high"),
    [
        # Newcombe RG, Statistics in Medicine 17:873-890 (1998), table II, method 10.
        ((56, 70), (48, 80), 0.0524, 0.3339),
        ((9, 10), (3, 10), 0.1705, 0.8090),
        ((6, 7), (2, 7), 0.0582, 0.8062),
        ((5, 56), (0, 29), -0.0381, 0.1926),
        ((0, 10), (0, 20), -0.1611, 0.2775),
        ((10, 10), (0, 20), 0.6791, 1.0),
    ],
)
def test_newcombe_difference_matches_published_values(a, b, low, high):
    diff = newcombe_difference(wilson_interval(*a), wilson_interval(*b))
    assert diff.difference == pytest.approx(a[0] / a[1] - b[0] / b[1])
    assert (diff.low, diff.high) == (pytest.approx(low, abs=5e-5), pytest.approx(high, abs=5e-5))


def test_no_trials_means_no_rate_and_no_difference():
    empty = wilson_interval(0, 0)
    assert (empty.rate, empty.low, empty.high) == (None, None, None)
    diff = newcombe_difference(empty, wilson_interval(3, 10))
    assert (diff.difference, diff.low, diff.high) == (None, None, None)
    with pytest.raises(ValueError):
        wilson_interval(4, 3)
