"""Confidence intervals for rates and for the difference of two rates.

A rate here is k successes out of n independent decisions (take-up, default, complaint).

- One rate: the Wilson score interval (Wilson 1927), from scipy's ``binomtest``. Unlike
  the textbook normal ("Wald") interval it stays inside [0, 1] and keeps close to its
  nominal coverage for small n and for rates near 0 or 1, which complaint and default
  rates are.
- A difference of two independent rates (challenger minus champion): Newcombe's hybrid
  score interval (Newcombe 1998, "method 10"), built from the two Wilson intervals. It
  has the same virtues and needs no iteration.

Pure functions: no Django.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scipy.stats import binomtest

CONFIDENCE = 0.95
METHOD_RATE = "Wilson score interval"
METHOD_DIFFERENCE = "Newcombe hybrid score interval (method 10)"


@dataclass(frozen=True)
class RateInterval:
    successes: int
    trials: int
    rate: float | None
    low: float | None
    high: float | None


@dataclass(frozen=True)
class DifferenceInterval:
    difference: float | None
    low: float | None
    high: float | None


def wilson_interval(successes: int, trials: int, *, confidence: float = CONFIDENCE) -> RateInterval:
    """The rate ``successes / trials`` with its Wilson score interval; None when n is 0."""
    if trials < 0 or not 0 <= successes <= trials:
        raise ValueError(f"need 0 <= successes <= trials, got {successes} of {trials}")
    if trials == 0:
        return RateInterval(successes, trials, None, None, None)
    ci = binomtest(successes, trials).proportion_ci(confidence_level=confidence, method="wilson")
    return RateInterval(successes, trials, successes / trials, float(ci.low), float(ci.high))


def newcombe_difference(first: RateInterval, second: RateInterval) -> DifferenceInterval:
    """``first.rate - second.rate`` with Newcombe's hybrid score interval.

    Both intervals must come from ``wilson_interval`` at the same ``confidence``. None
    when either rate has no trials.
    """
    if first.rate is None or second.rate is None:
        return DifferenceInterval(None, None, None)
    assert first.low is not None and first.high is not None
    assert second.low is not None and second.high is not None
    p1, p2 = first.rate, second.rate
    difference = p1 - p2
    low = difference - math.hypot(p1 - first.low, second.high - p2)
    high = difference + math.hypot(first.high - p1, p2 - second.low)
    return DifferenceInterval(difference, low, high)
