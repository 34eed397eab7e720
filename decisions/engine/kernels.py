"""Compiled passes over customers for the portfolio solver (``portfolio``).

Each pass the solver repeats (the dual function and its subgradient, the screen of a
price box, the survey and the spread of each customer's use, the Farkas function, a
choice's totals, the copy of a subset of customers) is one loop over customers here,
compiled by Numba (already installed with shap; ADR 0009). Written with NumPy the same
pass materialises a float64 score matrix, masks it, reduces it and gathers from it, each
a separate sweep through memory; fused, it reads each customer's value and use once.
The arithmetic is the NumPy version's, in float64 whatever the inputs' type:
value - sum_m p_m * use_m, limit by limit in order, so the results agree to the last few
bits (the summation order of the totals differs) and the ties break the same way (the
first best action).

Kernels take the whole arrays and a half-open range of customers, so callers keep their
chunking; compiled code is cached next to this file (``cache=True``) when it is writable.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True, inline="always")
def _scores(value, usage, allowed, every, prices, n, scores):  # pragma: no cover
    """value[n] - prices . usage[:, n] into ``scores`` (K,), limit by limit in order;
    -inf for actions not allowed (allowed ones have finite values, so one always leads)."""
    k = value.shape[1]
    for a in range(k):
        scores[a] = value[n, a]
    for i in range(usage.shape[0]):
        price = prices[i]
        if price != 0.0:
            for a in range(k):
                scores[a] -= price * np.float64(usage[i, n, a])
    if not every:
        for a in range(k):
            if not allowed[n, a]:
                scores[a] = -np.inf


@njit(cache=True, nogil=True)
def respond(value, usage, allowed, every, prices, start, stop, choice, used):  # pragma: no cover
    """The price-optimal action of customers ``start:stop`` into ``choice[start:stop]``;
    adds their use to ``used`` (M,) and returns the sum of their best reduced values.

    ``every``: all actions are allowed (``allowed`` is not read).
    """
    m = usage.shape[0]
    k = value.shape[1]
    total = 0.0
    scores = np.empty(k)
    for n in range(start, stop):
        _scores(value, usage, allowed, every, prices, n, scores)
        # Branch-free: which action leads is data-dependent, so a branch on it is
        # mispredicted about half the time (this loop ran 1.8x slower with one).
        best = 0
        top = scores[0]
        for a in range(1, k):
            score = scores[a]
            better = score > top
            best = a if better else best
            top = score if better else top
        choice[n] = best
        total += top
        for i in range(m):
            used[i] += usage[i, n, best]
    return total


@njit(cache=True, nogil=True)
def screen(
    value,
    usage,
    allowed,
    every,
    spread,
    center,
    radius,
    start,
    stop,
    free,
    choice,
    used,
    fixed_used,
):  # pragma: no cover
    """One pass at ``center`` over customers ``start:stop``: which of them may change their
    best action for prices within ``radius`` of ``center``.

    Sets ``free`` and ``choice``, adds the price-optimal choice's use to ``used`` and the
    fixed customers' use to ``fixed_used``; returns (sum of best reduced values, value of
    the fixed customers' actions). A customer is fixed when its best action leads the
    runner-up by more than ``radius . spread`` (plus 1e-9 of its best score).
    """
    m = usage.shape[0]
    k = value.shape[1]
    total = 0.0
    fixed_value = 0.0
    scores = np.empty(k)
    for n in range(start, stop):
        _scores(value, usage, allowed, every, center, n, scores)
        best = 0
        top = scores[0]
        second = -np.inf
        for a in range(1, k):
            score = scores[a]
            better = score > top
            second = max(second, top if better else score)
            best = a if better else best
            top = score if better else top
        choice[n] = best
        total += top
        reach = 1e-9 * (1.0 + abs(top))
        for i in range(m):
            reach += radius[i] * spread[i, n]
        loose = not (top - second > reach)
        free[n] = loose
        for i in range(m):
            used[i] += usage[i, n, best]
        if not loose:
            fixed_value += value[n, best]
            for i in range(m):
                fixed_used[i] += usage[i, n, best]
    return total, fixed_value


@njit(cache=True, nogil=True)
def spread_of_usage(usage, start, stop, spread):  # pragma: no cover
    """max_k - min_k of each customer's use of each limit, into ``spread[:, start:stop]``."""
    m = usage.shape[0]
    k = usage.shape[2]
    for i in range(m):
        for n in range(start, stop):
            high = usage[i, n, 0]
            low = usage[i, n, 0]
            for a in range(1, k):
                u = usage[i, n, a]
                if u > high:
                    high = u
                if u < low:
                    low = u
            spread[i, n] = high - low


@njit(cache=True, nogil=True)
def least_use(usage, allowed, every, point, start, stop, used):  # pragma: no cover
    """sum over customers ``start:stop`` of min over allowed k of point . usage[:, n, k];
    adds the minimising actions' use to ``used`` (for Farkas certificates)."""
    m = usage.shape[0]
    k = usage.shape[2]
    total = 0.0
    cost = np.empty(k)
    for n in range(start, stop):
        for a in range(k):
            cost[a] = 0.0
        for i in range(m):
            weight = point[i]
            for a in range(k):
                cost[a] += weight * np.float64(usage[i, n, a])
        if not every:
            for a in range(k):
                if not allowed[n, a]:
                    cost[a] = np.inf
        cheapest = 0
        least = cost[0]
        for a in range(1, k):
            c = cost[a]
            lower = c < least
            cheapest = a if lower else cheapest
            least = c if lower else least
        total += least
        for i in range(m):
            used[i] += usage[i, n, cheapest]
    return total


@njit(cache=True, nogil=True)
def totals(value, usage, choice, start, stop, used):  # pragma: no cover
    """The value of ``choice`` for customers ``start:stop``; adds its use to ``used``."""
    m = usage.shape[0]
    objective = 0.0
    for n in range(start, stop):
        a = choice[n]
        objective += value[n, a]
        for i in range(m):
            used[i] += usage[i, n, a]
    return objective


@njit(cache=True, nogil=True)
def gather(value, usage, allowed, rows, value_out, usage_out, allowed_out):  # pragma: no cover
    """The customers ``rows`` (ascending or not) of the three arrays, into the outputs."""
    m = usage.shape[0]
    k = value.shape[1]
    for j in range(rows.shape[0]):
        n = rows[j]
        for a in range(k):
            value_out[j, a] = value[n, a]
            allowed_out[j, a] = allowed[n, a]
        for i in range(m):
            for a in range(k):
                usage_out[i, j, a] = usage[i, n, a]


@njit(cache=True, nogil=True)
def survey(usage, allowed, every, weight, start, stop, low, thrifty, spread):  # pragma: no cover
    """Per limit, the least use customers ``start:stop`` can make of it (each on its own,
    added to ``low``), the use of each one's thriftiest allowed action (least
    ``weight . use``, added to ``thrifty``), and ``spread`` as ``spread_of_usage``."""
    m = usage.shape[0]
    k = usage.shape[2]
    least_use(usage, allowed, every, weight, start, stop, thrifty)
    for i in range(m):
        total = 0.0
        for n in range(start, stop):
            high = usage[i, n, 0]
            low_all = usage[i, n, 0]
            low_allowed = np.inf
            for a in range(k):
                u = usage[i, n, a]
                high = max(high, u)
                low_all = min(low_all, u)
                if every or allowed[n, a]:
                    low_allowed = min(low_allowed, u)
            spread[i, n] = high - low_all
            total += low_allowed
        low[i] += total


@njit(cache=True, nogil=True)
def repair_ratios(
    value, usage, allowed, every, weight, choice, start, stop, best_ratio, best_action
):  # pragma: no cover
    """For the repair: each customer's cheapest way to relieve the violated limits.

    For customers ``start:stop`` and each allowed action other than the current one, the
    relief ``-(weight . (use of the action - use of the current action))`` and the value
    given up ``max(value of the current - value of the action, 0)``; where the relief is
    positive (> 1e-15), their ratio. The smallest ratio (the first action on ties) goes to
    ``best_ratio``, its action to ``best_action``; inf (and action 0) when no action
    relieves anything.
    """
    m = usage.shape[0]
    k = value.shape[1]
    for n in range(start, stop):
        current = choice[n]
        kept = np.float64(value[n, current])
        best = np.inf
        pick = 0
        for a in range(k):
            if a == current or not (every or allowed[n, a]):
                continue
            change = 0.0
            for i in range(m):
                change += weight[i] * (
                    np.float64(usage[i, n, a]) - np.float64(usage[i, n, current])
                )
            relief = -change
            if relief > 1e-15:
                ratio = max(kept - np.float64(value[n, a]), 0.0) / relief
                if ratio < best:
                    best = ratio
                    pick = a
        best_ratio[n] = best
        best_action[n] = pick


@njit(cache=True, nogil=True)
def fill_candidates(
    value, usage, allowed, every, prices, choice, start, stop, target, gain
):  # pragma: no cover
    """For the fill: each customer's best price-adjusted action among those worth more
    than the current one (by more than 1e-12), the first on ties, into ``target`` (-1 when
    none is) with its value gain into ``gain``."""
    k = value.shape[1]
    scores = np.empty(k)
    for n in range(start, stop):
        _scores(value, usage, allowed, every, prices, n, scores)
        kept = np.float64(value[n, choice[n]])
        best = -1
        top = -np.inf
        for a in range(k):
            more = np.float64(value[n, a]) - kept
            if more > 1e-12 and scores[a] > top:
                best = a
                top = scores[a]
        target[n] = best
        gain[n] = np.float64(value[n, best]) - kept if best >= 0 else 0.0


@njit(cache=True, nogil=True)
def fill_moves(usage, ceiling, used, customers, target, choice, moved):  # pragma: no cover
    """Take the moves ``customers[j] -> target[j]`` in order, each one that keeps every
    limit's use within ``ceiling`` (M,) given the moves taken before it; updates ``used``
    (M,) and marks ``moved``. Returns how many were taken."""
    m = usage.shape[0]
    taken = 0
    delta = np.empty(m)
    for j in range(customers.shape[0]):
        n = customers[j]
        a = target[j]
        current = choice[n]
        fits = True
        for i in range(m):
            delta[i] = np.float64(usage[i, n, a]) - np.float64(usage[i, n, current])
            if used[i] + delta[i] > ceiling[i]:
                fits = False
        if fits:
            for i in range(m):
                used[i] += delta[i]
            moved[j] = True
            taken += 1
    return taken
