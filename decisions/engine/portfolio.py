"""Choose one action per customer to maximise total value within portfolio limits.

::

    maximise    sum_n value[n, choice[n]]
    subject to  sum_n usage[m, n, choice[n]] <= limit[m]     for every limit m
                choice[n] in the actions allowed for customer n

The method is Lagrangian. For prices ``p >= 0`` the dual function

    L(p) = sum_n max_k (value[n, k] - p . usage[:, n, k]) + p . limit

is an upper bound on the optimum (any feasible choice scores at most L(p)), so the gap
reported is certified. L is convex and piecewise linear in the M prices; it is minimised
by a box-step cutting-plane (bundle) method: a linear model built from the cuts seen so
far, minimised within a trust region around the best prices, with serious and null steps.
The prices at the minimum are the dual prices real time subtracts from values. A primal
repair then makes the price-optimal choice feasible, a fill spends remaining slack, and
small problems (or the small residual problem of the customers the prices leave nearly
indifferent) are finished exactly with OR-Tools (SCIP) within ``time_limit``.

Infeasibility is decided before any of that: a limit no choice can meet, or limits that
contradict each other (a Farkas certificate found on the price simplex), end
``infeasible`` naming the limits. No Django here; arrays in, arrays out. Every pass over
customers is chunked, so 1M customers x 8 actions x 5 limits stay within memory.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linprog

OPTIMAL, FEASIBLE, INFEASIBLE, TIME_LIMIT = "optimal", "feasible", "infeasible", "time_limit"
CHUNK = 65_536
EXACT_SIZE = 20_000
"""Problems with at most this many allowed (customer, action) pairs are solved exactly."""


@dataclass(frozen=True)
class PortfolioSolution:
    choice: np.ndarray
    """(N,) index of the chosen action per customer (-1 only when infeasible)."""
    objective: float
    bound: float
    """A proven upper bound on the optimum (the best dual value found)."""
    gap: float
    """(bound - objective) / max(1, |bound|)."""
    prices: np.ndarray
    """(M,) dual prices >= 0 of the limits."""
    status: str
    infeasible_limits: list[int] = field(default_factory=list)
    usage: np.ndarray | None = None
    """(M,) what the chosen actions use of each limit."""
    iterations: int = 0
    message: str = ""


def _chunks(n: int) -> Iterator[slice]:
    for start in range(0, n, CHUNK):
        yield slice(start, min(n, start + CHUNK))


class _ProvenInfeasible(Exception):
    """The exact solver proved that no choice meets every limit."""


class _Problem:
    """The arrays with the mask applied, and the passes over customers the method needs."""

    def __init__(
        self, value: np.ndarray, usage: np.ndarray, limit: np.ndarray, allowed: np.ndarray
    ) -> None:
        self.value, self.usage, self.limit, self.allowed = value, usage, limit, allowed
        self.n, self.k = value.shape
        self.m = limit.shape[0]

    def reduced(self, prices: np.ndarray, rows: slice) -> np.ndarray:
        """value - prices . usage on a chunk of customers; -inf where not allowed."""
        scores = self.value[rows].astype(np.float64, copy=True)
        if self.m:
            scores -= np.tensordot(prices, self.usage[:, rows, :], axes=1)
        scores[~self.allowed[rows]] = -np.inf
        return scores

    def best_response(self, prices: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
        """L(prices), a subgradient, and the price-optimal choice."""
        total = float(prices @ self.limit) if self.m else 0.0
        used = np.zeros(self.m)
        choice = np.empty(self.n, dtype=np.int64)
        for rows in _chunks(self.n):
            scores = self.reduced(prices, rows)
            best = np.argmax(scores, axis=1)
            choice[rows] = best
            total += float(scores[np.arange(len(best)), best].sum())
            used += self.used_by(best, rows)
        return total, self.limit - used, choice

    def used_by(self, choice: np.ndarray, rows: slice) -> np.ndarray:
        if not self.m:
            return np.zeros(0)
        idx = np.arange(rows.stop - rows.start)
        return self.usage[:, rows, :][:, idx, choice].sum(axis=1)

    def totals(self, choice: np.ndarray) -> tuple[float, np.ndarray]:
        objective, used = 0.0, np.zeros(self.m)
        for rows in _chunks(self.n):
            part = choice[rows]
            objective += float(self.value[rows][np.arange(len(part)), part].sum())
            used += self.used_by(part, rows)
        return objective, used

    def min_usage(self) -> np.ndarray:
        """(M,) the least each limit can be used, limit by limit."""
        low = np.zeros(self.m)
        for rows in _chunks(self.n):
            masked = np.where(self.allowed[rows][None, :, :], self.usage[:, rows, :], np.inf)
            low += masked.min(axis=2).sum(axis=1)
        return low


def _tolerance(problem: _Problem) -> np.ndarray:
    scale = np.abs(problem.limit) + 1.0
    return 1e-9 * scale * max(1, problem.n) ** 0.5


def _farkas_value(problem: _Problem, point: np.ndarray) -> tuple[float, np.ndarray]:
    """h(p) = p . limit - sum_n min_k p . usage[:, n, k], and a subgradient."""
    value = float(point @ problem.limit)
    grad = problem.limit.astype(np.float64).copy()
    for rows in _chunks(problem.n):
        contrib = np.tensordot(point, problem.usage[:, rows, :], axes=1)
        contrib[~problem.allowed[rows]] = np.inf
        low = np.argmin(contrib, axis=1)
        idx = np.arange(len(low))
        value -= float(contrib[idx, low].sum())
        grad -= problem.usage[:, rows, :][:, idx, low].sum(axis=1)
    return value, grad


def _feasibility_certificate(problem: _Problem, deadline: float) -> np.ndarray | None:
    """Prices on the simplex proving the limits contradict each other, or None.

    The LP relaxation is feasible iff min over the simplex of h(p) is >= 0 (Farkas); h is
    convex and piecewise linear, so cutting planes find its minimum. The certificate is
    then pruned to as few limits as still prove the contradiction, so the message names
    the limits that clash and not a bystander.
    """
    m = problem.m
    cuts_g: list[np.ndarray] = []
    cuts_f: list[float] = []
    point = np.full(m, 1.0 / m)
    scale = float(np.abs(problem.limit).sum() + 1.0)
    negative = None
    for _ in range(200):
        value, grad = _farkas_value(problem, point)
        if value < -1e-7 * scale:
            negative = point
            break
        cuts_g.append(grad)
        cuts_f.append(value - float(grad @ point))
        # min t s.t. t >= cut(p), sum p = 1, p >= 0
        c = np.zeros(m + 1)
        c[-1] = 1.0
        result = linprog(
            c,
            A_ub=np.hstack([np.array(cuts_g), -np.ones((len(cuts_g), 1))]),
            b_ub=-np.array(cuts_f),
            A_eq=np.hstack([np.ones((1, m)), np.zeros((1, 1))]),
            b_eq=[1.0],
            bounds=[(0, None)] * m + [(None, None)],
            method="highs",
        )
        if not result.success:
            return None
        point = result.x[:m]
        if result.x[-1] >= -1e-7 * scale or time.monotonic() > deadline:
            return None
    if negative is None:
        return None
    for i in np.argsort(negative):
        if negative[i] <= 0 or np.count_nonzero(negative) == 1:
            continue
        trial = negative.copy()
        trial[i] = 0.0
        trial /= trial.sum()
        if _farkas_value(problem, trial)[0] < -1e-7 * scale:
            negative = trial
    return negative


def _minimise_dual(
    problem: _Problem, deadline: float, tolerance: float
) -> tuple[np.ndarray, float, np.ndarray, int, bool]:
    """Box-step bundle minimisation of L; returns prices, L there, choice, iterations, done."""
    m = problem.m
    center = np.zeros(m)
    f_center, g, choice = problem.best_response(center)
    if m == 0:
        return center, f_center, choice, 1, True
    spread = float(np.abs(problem.value).max()) if problem.value.size else 1.0
    unit = np.abs(problem.usage).reshape(m, -1).max(axis=1)
    radius = np.maximum(spread / np.maximum(unit, 1e-12), 1e-6)
    cuts_g, cuts_f = [g], [f_center]
    cuts_p = [center.copy()]
    best_choice = choice
    iterations = 1
    nulls = 0
    converged = False
    while iterations < 500 and time.monotonic() < deadline:
        g_arr = np.array(cuts_g)
        offsets = np.array(cuts_f) - np.einsum("ij,ij->i", g_arr, np.array(cuts_p))
        c = np.zeros(m + 1)
        c[-1] = 1.0
        lower = np.maximum(0.0, center - radius)
        upper = center + radius
        result = linprog(
            c,
            A_ub=np.hstack([g_arr, -np.ones((len(g_arr), 1))]),
            b_ub=-offsets,
            bounds=[*zip(lower, upper, strict=True), (None, None)],
            method="highs",
        )
        if not result.success:
            break
        candidate, predicted = result.x[:m], float(result.x[-1])
        decrease = f_center - predicted
        if decrease <= tolerance * max(1.0, abs(f_center)):
            at_box = np.any(np.isclose(candidate, upper) & (radius > 0))
            if not at_box:
                converged = True
                break
            radius *= 4.0  # the model's minimum sits on the box edge: look further
            continue
        f_new, g_new, choice_new = problem.best_response(candidate)
        iterations += 1
        cuts_g.append(g_new)
        cuts_f.append(f_new)
        cuts_p.append(candidate.copy())
        if f_new <= f_center - 0.1 * decrease:
            on_edge = np.isclose(candidate, upper) | (np.isclose(candidate, lower) & (lower > 0))
            center, f_center, best_choice = candidate, f_new, choice_new
            nulls = 0
            if np.any(on_edge):
                radius *= 2.0
        else:
            # A null step: the new cut sharpens the model; shrink the box only when cuts
            # alone keep failing to produce a serious step.
            nulls += 1
            if nulls >= 5:
                radius = np.maximum(radius * 0.5, 1e-12)
                nulls = 0
        if len(cuts_g) > 200:  # keep the LP small: drop the oldest cuts
            cuts_g, cuts_f, cuts_p = cuts_g[-150:], cuts_f[-150:], cuts_p[-150:]
    return center, f_center, best_choice, iterations, converged


def _repair(problem: _Problem, choice: np.ndarray, prices: np.ndarray) -> np.ndarray | None:
    """Move customers to cheaper actions until every limit holds; None if it cannot."""
    choice = choice.copy()
    _, used = problem.totals(choice)
    slack_tol = _tolerance(problem)
    for _ in range(4 * problem.m + 20):
        over = used - problem.limit
        violated = over > slack_tol
        if not violated.any():
            return choice
        # Weight each limit by how far it is over (relative), plus the prices.
        weight = np.where(violated, over / (np.abs(problem.limit) + 1.0), 0.0)
        weight = weight / max(weight.max(), 1e-300) + 1e-3 * prices / (prices.max() + 1e-300)
        best_ratio = np.full(problem.n, np.inf)
        best_action = choice.copy()
        for rows in _chunks(problem.n):
            idx = np.arange(rows.stop - rows.start)
            current = choice[rows]
            delta_u = (
                problem.usage[:, rows, :] - problem.usage[:, rows, :][:, idx, current][:, :, None]
            )
            relief = -np.tensordot(weight, delta_u, axes=1)
            loss = problem.value[rows][idx, current][:, None] - problem.value[rows]
            ratio = np.full(relief.shape, np.inf)
            helps = relief > 1e-15
            np.divide(np.maximum(loss, 0.0), relief, out=ratio, where=helps)
            ratio[~problem.allowed[rows]] = np.inf
            ratio[idx, current] = np.inf
            pick = np.argmin(ratio, axis=1)
            best_ratio[rows] = ratio[idx, pick]
            best_action[rows] = pick
        order = np.argsort(best_ratio, kind="stable")
        order = order[np.isfinite(best_ratio[order])]
        if not len(order):
            return None
        # Switch customers in ratio order until the worst violation is covered.
        moved = False
        for start in range(0, len(order), 1024):
            batch = order[start : start + 1024]
            old, new = choice[batch], best_action[batch]
            delta = problem.usage[:, batch, new] - problem.usage[:, batch, old]
            cumulative = np.cumsum(delta, axis=1)
            covered = np.all(
                (over[:, None] + cumulative <= slack_tol[:, None]) | ~violated[:, None], axis=0
            )
            stop = int(np.argmax(covered)) + 1 if covered.any() else len(batch)
            choice[batch[:stop]] = new[:stop]
            used += cumulative[:, stop - 1]
            over = used - problem.limit
            moved = True
            if covered.any():
                break
        if not moved:
            return None
    _, used = problem.totals(choice)
    return choice if np.all(used - problem.limit <= slack_tol) else None


def _fill(problem: _Problem, choice: np.ndarray, prices: np.ndarray) -> np.ndarray:
    """Spend remaining slack: move customers to better actions while every limit holds.

    Candidate moves (each customer's best price-adjusted improving action) are taken in
    order of value gain, in vectorised batches; a move that would break a limit is skipped.
    """
    choice = choice.copy()
    _, used = problem.totals(choice)
    tol = _tolerance(problem)
    for _ in range(3):
        movers, targets, gains = [], [], []
        for rows in _chunks(problem.n):
            idx = np.arange(rows.stop - rows.start)
            current = choice[rows]
            gain = problem.value[rows] - problem.value[rows][idx, current][:, None]
            preference = np.where(gain > 1e-12, problem.reduced(prices, rows), -np.inf)
            pick = np.argmax(preference, axis=1)
            ok = np.isfinite(preference[idx, pick])
            movers.append(rows.start + idx[ok])
            targets.append(pick[ok])
            gains.append(gain[idx[ok], pick[ok]])
        customers = np.concatenate(movers)
        if not len(customers):
            break
        target = np.concatenate(targets)
        order = np.argsort(-np.concatenate(gains), kind="stable")
        customers, target = customers[order], target[order]
        delta = problem.usage[:, customers, target] - problem.usage[:, customers, choice[customers]]
        moved = np.zeros(len(customers), dtype=bool)
        position = 0
        while position < len(customers):
            # Moves that cannot fit on their own are dropped before batching.
            slack = problem.limit + tol - used
            fits = np.all(delta[:, position:] <= slack[:, None], axis=0)
            rest = np.nonzero(fits)[0] + position
            if not len(rest):
                break
            batch = rest[:4096]
            cumulative = used[:, None] + np.cumsum(delta[:, batch], axis=1)
            within = np.all(cumulative <= (problem.limit + tol)[:, None], axis=0)
            take = len(batch) if within.all() else int(np.argmin(within))
            if take:
                moved[batch[:take]] = True
                used = cumulative[:, take - 1].copy()
            position = int(batch[take]) + 1 if take < len(batch) else int(batch[-1]) + 1
        if not moved.any():
            break
        choice[customers[moved]] = target[moved]
    return choice


def _primal(problem: _Problem, prices: np.ndarray, choice: np.ndarray) -> np.ndarray | None:
    """The best feasible choice from the price-optimal ones at slightly raised prices.

    At the dual optimum, customers indifferent between actions make the price-optimal
    choice overshoot some limits; raising prices a little resolves most ties towards
    thrift, the repair fixes what remains, and the fill spends the slack left over.
    """
    best, best_objective = None, -np.inf
    floor = 1e-9 * (np.abs(problem.value).max() + 1.0) / (np.abs(problem.usage).max() + 1e-12)
    for raise_by in (0.0, 1e-4, 1e-2, 0.05, 0.2):
        raised = prices * (1.0 + raise_by) + (floor if raise_by else 0.0)
        start = choice if raise_by == 0.0 else problem.best_response(raised)[2]
        repaired = _repair(problem, start, raised)
        if repaired is None:
            continue
        filled = _fill(problem, repaired, prices)
        objective, _ = problem.totals(filled)
        if objective > best_objective:
            best, best_objective = filled, objective
    return best


def _exact(
    problem: _Problem,
    customers: np.ndarray,
    choice: np.ndarray,
    seconds: float,
) -> tuple[np.ndarray, bool, float | None] | None:
    """Solve the sub-problem of ``customers`` exactly (others fixed) with SCIP.

    Returns the improved choice, whether SCIP proved optimality, and its best bound (of the
    sub-problem, valid for the whole only when every customer is included).
    """
    from ortools.linear_solver import pywraplp

    solver = pywraplp.Solver.CreateSolver("SCIP")
    if solver is None or seconds <= 0:
        return None
    solver.SetTimeLimit(max(1, int(seconds * 1000)))
    fixed = np.ones(problem.n, dtype=bool)
    fixed[customers] = False
    used_fixed = np.zeros(problem.m)
    for rows in _chunks(problem.n):
        idx = np.nonzero(fixed[rows])[0]
        if len(idx):
            used_fixed += problem.usage[:, rows, :][:, idx, choice[rows][idx]].sum(axis=1)
    variables: dict[tuple[int, int], object] = {}
    objective = solver.Objective()
    for n in customers:
        allowed = np.nonzero(problem.allowed[n])[0]
        row = []
        for k in allowed:
            var = solver.BoolVar(f"x_{n}_{k}")
            variables[(int(n), int(k))] = var
            objective.SetCoefficient(var, float(problem.value[n, k]))
            row.append(var)
        solver.Add(solver.Sum(row) == 1)
    objective.SetMaximization()
    for m in range(problem.m):
        terms = [
            (var, float(problem.usage[m, n, k]))
            for (n, k), var in variables.items()
            if problem.usage[m, n, k] != 0
        ]
        constraint = solver.RowConstraint(
            -solver.infinity(), float(problem.limit[m] - used_fixed[m])
        )
        for var, coefficient in terms:
            constraint.SetCoefficient(var, coefficient)
    hint_vars, hint_values = [], []
    for (n, k), var in variables.items():
        hint_vars.append(var)
        hint_values.append(1.0 if choice[n] == k else 0.0)
    solver.SetHint(hint_vars, hint_values)
    status = solver.Solve()
    if status == pywraplp.Solver.INFEASIBLE:
        raise _ProvenInfeasible
    if status not in (pywraplp.Solver.OPTIMAL, pywraplp.Solver.FEASIBLE):
        return None
    improved = choice.copy()
    for (n, k), var in variables.items():
        if var.solution_value() > 0.5:
            improved[n] = k
    return improved, status == pywraplp.Solver.OPTIMAL, float(objective.BestBound())


def solve_portfolio(
    value: np.ndarray,
    usage: np.ndarray,
    limit: np.ndarray,
    *,
    allowed: np.ndarray | None = None,
    time_limit: float | None = None,
    tolerance: float = 1e-6,
    exact_size: int = EXACT_SIZE,
    residual_seconds: float = 2.0,
) -> PortfolioSolution:
    """Choose one allowed action per customer, maximising value within the limits.

    ``usage`` is (M, N, K) in "<=" form (a ">=" limit is passed negated) and may be
    float32. Instances with at most ``exact_size`` allowed pairs go to SCIP whole; larger
    ones give SCIP ``residual_seconds`` for the customers the prices leave nearly
    indifferent. Returns the choice, its objective, a proven upper bound and the certified
    gap, the dual prices, per-limit use and a status among optimal, feasible, infeasible,
    time_limit (stopped before finding a feasible choice).
    """
    started = time.monotonic()
    deadline = started + (time_limit if time_limit is not None else 3600.0)
    value = np.asarray(value)
    n, k = value.shape
    usage = np.asarray(usage).reshape(-1, n, k)
    limit = np.asarray(limit, dtype=np.float64).reshape(-1)
    if usage.shape[0] != limit.shape[0]:
        raise ValueError(f"usage has {usage.shape[0]} limits but limit has {limit.shape[0]}")
    mask = np.ones((n, k), dtype=bool) if allowed is None else np.asarray(allowed, dtype=bool)
    mask = mask & np.isfinite(value)
    if mask.shape != (n, k):
        raise ValueError("allowed must have the shape of value")
    m = limit.shape[0]
    problem = _Problem(value, usage, limit, mask)
    empty = np.full(n, -1, dtype=np.int64)

    def infeasible(limits: list[int], message: str) -> PortfolioSolution:
        return PortfolioSolution(
            choice=empty,
            objective=float("-inf"),
            bound=float("-inf"),
            gap=float("inf"),
            prices=np.zeros(m),
            status=INFEASIBLE,
            infeasible_limits=limits,
            message=message,
        )

    if not mask.any(axis=1).all():
        stuck = int(np.argmin(mask.any(axis=1)))
        return infeasible([], f"customer {stuck} has no allowed action")
    if m:
        low = problem.min_usage()
        alone = np.nonzero(low > limit + _tolerance(problem))[0]
        if len(alone):
            return infeasible(
                [int(i) for i in alone], "no choice meets these limits even on its own"
            )
        certificate = _feasibility_certificate(problem, deadline) if m > 1 else None
        if certificate is not None:
            limits = [int(i) for i in np.nonzero(certificate > 1e-9)[0]]
            return infeasible(limits, "these limits contradict each other")

    # Prices must be precise for the price-optimal choice to be nearly feasible: a loose
    # dual leaves the repair to move thousands of customers (a 0.3% gap at 100k, not 1e-5).
    prices, bound, choice, iterations, converged = _minimise_dual(problem, deadline, 1e-9)
    feasible = _primal(problem, prices, choice) if m else choice
    proven = False
    pairs = int(mask.sum())
    remaining = deadline - time.monotonic()
    if pairs <= exact_size and m and remaining > 0:
        start = feasible if feasible is not None else choice
        try:
            exact = _exact(problem, np.arange(n), start, remaining)
        except _ProvenInfeasible:
            return infeasible(
                [int(i) for i in range(m)],
                "no choice meets every limit at once (proven by exact search), although "
                "each can be met on its own",
            )
        if exact is not None:
            candidate, proven, exact_bound = exact
            _, used = problem.totals(candidate)
            if np.all(used <= limit + _tolerance(problem)):
                feasible = candidate
                if exact_bound is not None:
                    bound = min(bound, exact_bound)
    elif feasible is not None and m and remaining > 0:
        # The customers the prices leave nearly indifferent decide the residual gap.
        near = _near_ties(problem, prices, limit_pairs=exact_size)
        if len(near):
            try:
                exact = _exact(problem, near, feasible, min(remaining, residual_seconds))
            except _ProvenInfeasible:  # impossible: the current choice is feasible
                exact = None
            if exact is not None:
                candidate = exact[0]
                objective_new, used = problem.totals(candidate)
                if (
                    np.all(used <= limit + _tolerance(problem))
                    and objective_new >= problem.totals(feasible)[0]
                ):
                    feasible = candidate

    if feasible is None:
        return PortfolioSolution(
            choice=choice,
            objective=float("-inf"),
            bound=bound,
            gap=float("inf"),
            prices=prices,
            status=TIME_LIMIT,
            iterations=iterations,
            message="no feasible choice was found before stopping",
        )
    objective, used = problem.totals(feasible)
    bound = max(bound, objective) if proven else bound
    gap = max(0.0, (bound - objective) / max(1.0, abs(bound)))
    if proven or gap <= tolerance:
        status = OPTIMAL
    elif not converged and time.monotonic() >= deadline:
        status = TIME_LIMIT
    else:
        status = FEASIBLE
    return PortfolioSolution(
        choice=feasible,
        objective=objective,
        bound=bound,
        gap=gap,
        prices=prices,
        status=status,
        usage=used,
        iterations=iterations,
    )


def _near_ties(problem: _Problem, prices: np.ndarray, *, limit_pairs: int) -> np.ndarray:
    """Customers whose two best price-adjusted actions are closest, up to ``limit_pairs``."""
    margin = np.empty(problem.n)
    for rows in _chunks(problem.n):
        scores = problem.reduced(prices, rows)
        top = np.partition(scores, -2, axis=1)[:, -2:] if problem.k > 1 else scores
        margin[rows] = top[:, -1] - top[:, 0] if problem.k > 1 else np.inf
    budget = max(1, limit_pairs // max(1, problem.k))
    count = min(problem.n, budget)
    return np.argsort(margin, kind="stable")[:count]
