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
Large problems start from the prices of a random sample's dual, and every evaluation
is screened: customers whose best action no price in the current box can change are
fixed, so an evaluation costs only the undecided ones and stays exact (see ``_Screen``).
The prices at the minimum are the dual prices real time subtracts from values. A primal
repair then makes the price-optimal choice feasible, a fill spends remaining slack, and
small problems (or the small residual problem of the customers the prices leave nearly
indifferent) are finished exactly with OR-Tools within ``time_limit`` (CP-SAT when the
data are integral, SCIP otherwise).

With many limits (``LP_LIMITS``) and a relaxation small enough for HiGHS, the LP takes
over when the bundle has not converged in its share of the time (it needs many cuts per
price there: the prices become the LP's, and L at them the certified bound) or when the
repair finds no feasible choice. The LP is then rounded: the customers it gives wholly to
one action keep it, the ones it splits and the nearest ties are solved exactly in what
the others leave.

Infeasibility is decided before any of that: a limit no choice can meet, or limits that
contradict each other (a Farkas certificate found on the price simplex), end
``infeasible`` naming the limits. No Django here; arrays in, arrays out. The passes over
customers the method repeats are compiled loops (``kernels``, ADR 0009) that read each
customer once and allocate nothing per customer; the others are chunked. So 1M customers
x 8 actions x 5 limits stay within memory.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace

import numpy as np
from scipy.optimize import linprog

from decisions.engine import kernels

OPTIMAL, FEASIBLE, INFEASIBLE, TIME_LIMIT = "optimal", "feasible", "infeasible", "time_limit"
CHUNK = 65_536
EXACT_SIZE = 20_000
"""Problems with at most this many allowed (customer, action) pairs are solved exactly."""
SAMPLE = 20_000
"""Problems with at least four times this many customers start from a sample's prices."""
START_BOX = 0.03
"""The box screened first: the sample's prices +- this fraction (and a floor)."""
RESIDUAL_PAIRS = 4_000
"""(customer, action) pairs of near-ties settled exactly around the price-optimal choice;
also the most the residual search gives SCIP (fractional data) around a feasible one."""
RAISES = (0.0, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 0.05, 0.2)
"""Relative price raises tried in turn when the customers fixed at their price-optimal
action leave the near-ties too little (each makes the fixed choice thriftier)."""
PRIMAL_SIZE = 4_096
"""The primal heuristic works on at least this many of the least decided customers."""
PRIMAL_NEAR = 16_384
"""Above four times this many undecided customers, the primal first tries only this many
nearest ties (``_near_primal``)."""
LP_LIMITS = 32
"""From this many limits, when the bundle has not converged, the prices come from the LP
relaxation (HiGHS) if it is small enough: the box-step bundle needs many cuts per price,
and on Yagiura's e801600 (80 limits) it had not converged after 500 steps (bound 21%
off), where HiGHS takes 1.1 s. With 20 limits the bundle still leads to better choices in
10 s (gapd, Yagiura e20200: the LP's exact prices leave ties the repair does not untangle
in time). Where the bundle converges it stays: on a 10,000 x 41 x 41 call-centre portfolio
it took 0.7 s where the LP route took 12 s."""
LP_NONZEROS = 1_000_000
"""The largest LP relaxation (non-zeros of its constraint matrix) handed to HiGHS: e801600
has 384,000 (1.1 s); a 10,000 x 41 x 41 call-centre portfolio has 1.6M and took 9.5 s."""
LP_BUNDLE_SHARE = 0.15
"""Where the LP can take over, the share of the time limit the bundle gets first."""
EXACT_FIRST_SHARE = 0.1
"""Of the time left for the exact search of a small problem, the share of the first search
over everything: most small instances are proven optimal in it (each of the OR-Library
gap1 and gap12 problems and of the Hiremath-Hill sets in under 1.5 s)."""
CORE_PLAN = ((2, 0.5), (3, 0.4))
"""Then, unless proven: searches over cores, each customer's few best actions at the
prices (and its action in the best choice so far), as (actions per customer, share of the
time left after the first search). CP-SAT finds better choices there than over everything
in the same time (benchmarks/RESULTS.md, 2026-11-30): Khan I09 1.1e-03 from the best known
value in 9.5 s over everything, 5.7e-04 with the cores; Yagiura e20200 9.6e-03 and
4.9e-04. What is left goes to a last search over everything from the best choice found,
for the bound: a core's search proves nothing about the whole."""


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
    passes: float = 0.0
    """Customers scored (reduced costs computed) over the solve, per customer."""


def _chunks(n: int) -> Iterator[slice]:
    for start in range(0, n, CHUNK):
        yield slice(start, min(n, start + CHUNK))


class _ProvenInfeasible(Exception):
    """The exact solver proved that no choice meets every limit."""


class _Problem:
    """The arrays with the mask applied, and the passes over customers the method needs.

    ``scored`` counts customer evaluations (shared with the problem's subsets), so a solve
    can report how many passes over the data its work amounts to.
    """

    def __init__(
        self, value: np.ndarray, usage: np.ndarray, limit: np.ndarray, allowed: np.ndarray
    ) -> None:
        self.value, self.usage, self.limit, self.allowed = value, usage, limit, allowed
        self.n, self.k = value.shape
        self.every = bool(allowed.all())
        """Every action is allowed to every customer (the compiled passes skip the mask)."""
        self.m = limit.shape[0]
        self.spread: np.ndarray | None = None
        """(M, N) max_k - min_k of each customer's use of each limit, once computed."""
        self.scored = [0]

    def subset(self, rows: np.ndarray, limit: np.ndarray) -> _Problem:
        """The customers ``rows`` alone, within ``limit`` (what the others leave)."""
        if len(rows) == self.n:
            part = _Problem(self.value, self.usage, limit, self.allowed)
        else:
            rows = np.asarray(rows, dtype=np.int64)
            value = np.empty((len(rows), self.k), dtype=self.value.dtype)
            usage = np.empty((self.m, len(rows), self.k), dtype=self.usage.dtype)
            allowed = np.empty((len(rows), self.k), dtype=bool)
            kernels.gather(
                np.asarray(self.value),
                np.asarray(self.usage),
                np.asarray(self.allowed),
                rows,
                value,
                usage,
                allowed,
            )
            part = _Problem(value, usage, limit, allowed)
        if self.spread is not None:
            part.spread = self.spread if len(rows) == self.n else self.spread[:, rows]
        part.scored = self.scored
        return part

    def reduced(self, prices: np.ndarray, rows: slice) -> np.ndarray:
        """value - prices . usage on a chunk of customers; -inf where not allowed."""
        self.scored[0] += rows.stop - rows.start
        scores = self.value[rows].astype(np.float64, copy=True)
        for m in range(self.m):  # limit by limit: each slice is contiguous, nothing is copied
            if prices[m]:
                scores -= prices[m] * self.usage[m, rows, :]
        scores[~self.allowed[rows]] = -np.inf
        return scores

    def best_response(self, prices: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
        """L(prices), a subgradient, and the price-optimal choice."""
        total = float(prices @ self.limit) if self.m else 0.0
        used = np.zeros(self.m)
        choice = np.empty(self.n, dtype=np.int64)
        self.scored[0] += self.n
        total += kernels.respond(
            *self._arrays(), np.asarray(prices, dtype=np.float64), 0, self.n, choice, used
        )
        return total, self.limit - used, choice

    def _arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
        """value, usage, allowed and ``every`` as the compiled passes take them."""
        return np.asarray(self.value), np.asarray(self.usage), np.asarray(self.allowed), self.every

    def totals(self, choice: np.ndarray) -> tuple[float, np.ndarray]:
        """The value of ``choice`` and its use of each limit."""
        used = np.zeros(self.m)
        objective = kernels.totals(
            np.asarray(self.value),
            np.asarray(self.usage),
            np.asarray(choice, dtype=np.int64),
            0,
            self.n,
            used,
        )
        return float(objective), used

    def survey(self) -> tuple[np.ndarray, np.ndarray]:
        """One pass: (M,) the least each limit can be used, limit by limit, and (M,) what
        the thriftiest choice (least use of all limits, each relative to its size) uses.

        When the thrifty choice meets every limit the problem is feasible and no Farkas
        certificate needs searching for. The same pass records ``spread`` for the screens.
        """
        low, thrifty = np.zeros(self.m), np.zeros(self.m)
        weight = 1.0 / (np.abs(self.limit) + 1.0)
        spread = np.empty((self.m, self.n), dtype=np.float32)
        _, usage, allowed, every = self._arrays()
        kernels.survey(usage, allowed, every, weight, 0, self.n, low, thrifty, spread)
        self.spread = spread
        return low, thrifty

    def spread_of_usage(self) -> np.ndarray:
        """(M, N) max_k - min_k of each customer's use of each limit (computed once)."""
        if self.spread is None:
            spread = np.empty((self.m, self.n), dtype=np.float32)
            kernels.spread_of_usage(np.asarray(self.usage), 0, self.n, spread)
            self.spread = spread
        return self.spread


def _tolerance(problem: _Problem) -> np.ndarray:
    scale = np.abs(problem.limit) + 1.0
    return 1e-9 * scale * max(1, problem.n) ** 0.5


def _farkas_value(problem: _Problem, point: np.ndarray) -> tuple[float, np.ndarray]:
    """h(p) = p . limit - sum_n min_k p . usage[:, n, k], and a subgradient."""
    _, usage, allowed, every = problem._arrays()
    used = np.zeros(problem.m)
    least = kernels.least_use(
        usage, allowed, every, np.asarray(point, dtype=np.float64), 0, problem.n, used
    )
    return float(point @ problem.limit) - least, problem.limit - used


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


@dataclass
class _Screen:
    """The customers whose choice can change while the prices stay within [lo, hi].

    Everyone else keeps one action throughout the box, so within it
    ``L(p) = fixed_value + L_rest(p)``, where ``L_rest`` is the dual function of ``rest``
    alone within the limits the others leave: exact, at the cost of ``rest`` only.
    """

    lo: np.ndarray
    hi: np.ndarray
    rest: np.ndarray
    """Indices (into the whole problem) of the customers still free in the box."""
    part: _Problem
    fixed_value: float


def _screen(
    problem: _Problem, center: np.ndarray, radius: np.ndarray
) -> tuple[np.ndarray, float, np.ndarray, np.ndarray, float, np.ndarray]:
    """One pass at ``center``: which customers' best action can change within ``radius``.

    A customer's best action k* stays best for every p with |p - center| <= radius when
    its lead over the runner-up exceeds ``radius . spread`` (spread: how much the
    customer's use of each limit varies between actions). Returns the mask of the others
    (free), the value and use of the fixed choices, and L(center), its subgradient and
    the price-optimal choice, which the same pass yields.
    """
    spread = problem.spread_of_usage()
    free = np.zeros(problem.n, dtype=bool)
    choice = np.empty(problem.n, dtype=np.int64)
    fixed_used, used = np.zeros(problem.m), np.zeros(problem.m)
    problem.scored[0] += problem.n
    top_sum, fixed_value = kernels.screen(
        *problem._arrays(),
        spread,
        np.asarray(center, dtype=np.float64),
        np.asarray(radius, dtype=np.float64),
        0,
        problem.n,
        free,
        choice,
        used,
        fixed_used,
    )
    total = float(center @ problem.limit) + top_sum
    return free, float(fixed_value), fixed_used, choice, total, problem.limit - used


def _screen_all(
    problem: _Problem, center: np.ndarray, radius: np.ndarray
) -> tuple[_Screen, float, np.ndarray, np.ndarray]:
    """The whole problem's screen of the box around ``center``, and L, its subgradient
    and the price-optimal choice there."""
    free, fixed_value, fixed_used, choice, total, grad = _screen(problem, center, radius)
    rest = np.nonzero(free)[0]
    part = problem.subset(rest, problem.limit - fixed_used)
    if len(rest) == problem.n:  # nobody is fixed: exact at any prices
        lo, hi = np.zeros(problem.m), np.full(problem.m, np.inf)
    else:
        lo, hi = np.maximum(0.0, center - radius), center + radius
    return _Screen(lo, hi, rest, part, fixed_value), total, grad, choice


def _screen_within(parent: _Screen, center: np.ndarray, radius: np.ndarray) -> _Screen:
    """A smaller box inside ``parent``, screened at the cost of ``parent.rest`` only."""
    free, fixed_value, fixed_used, _, _, _ = _screen(parent.part, center, radius)
    local = np.nonzero(free)[0]
    if len(local) == parent.part.n:  # nobody more is fixed: keep the parent's box
        return parent
    part = parent.part.subset(local, parent.part.limit - fixed_used)
    return _Screen(
        np.maximum(parent.lo, center - radius),
        np.minimum(parent.hi, center + radius),
        parent.rest[local],
        part,
        parent.fixed_value + fixed_value,
    )


class Cuts:
    """The cutting-plane model of L: max_i f_i + g_i . (p - p_i) over the cuts seen (value
    f_i and subgradient g_i of L at p_i), a lower estimate of the convex L.

    Kept in one GLOP LP (minimise t subject to t >= each cut, p within a box) that grows a
    row per cut and is re-solved warm: about 0.1 ms a step, where building and solving
    the LP anew with SciPy's HiGHS took over 1 ms, half of a 10k-customer solve. Past
    ``keep_max`` cuts the oldest are dropped (the LP is rebuilt from the newest
    ``keep``).
    """

    def __init__(self, m: int, *, keep: int = 150, keep_max: int = 200) -> None:
        self.m, self.keep, self.keep_max = m, keep, keep_max
        self.cuts: list[tuple[np.ndarray, float, np.ndarray]] = []
        self._build()

    def _build(self) -> None:
        from ortools.linear_solver import pywraplp

        self.solver = pywraplp.Solver.CreateSolver("GLOP")
        infinity = self.solver.infinity()
        self.prices = [self.solver.NumVar(0.0, infinity, f"p{i}") for i in range(self.m)]
        self.t = self.solver.NumVar(-infinity, infinity, "t")
        objective = self.solver.Objective()
        objective.SetCoefficient(self.t, 1.0)
        objective.SetMinimization()
        for g, f, p in self.cuts:
            self._row(g, f, p)

    def _row(self, g: np.ndarray, f: float, p: np.ndarray) -> None:
        # t >= f + g . (x - p)   <=>   g . x - t <= g . p - f
        row = self.solver.Constraint(-self.solver.infinity(), float(g @ p) - f)
        for i in range(self.m):
            row.SetCoefficient(self.prices[i], float(g[i]))
        row.SetCoefficient(self.t, -1.0)

    def __len__(self) -> int:
        return len(self.cuts)

    def add(self, g: np.ndarray, f: float, p: np.ndarray) -> None:
        cut = (np.asarray(g, dtype=np.float64).copy(), float(f), np.asarray(p).copy())
        self.cuts.append(cut)
        if len(self.cuts) > self.keep_max:
            self.cuts = self.cuts[-self.keep :]
            self._build()
        else:
            self._row(*cut)

    def minimum(self, lower: np.ndarray, upper: np.ndarray) -> tuple[np.ndarray, float] | None:
        """The model's minimum within [lower, upper] and its value there; None if the LP
        fails."""
        from ortools.linear_solver import pywraplp

        for i, var in enumerate(self.prices):
            var.SetBounds(float(lower[i]), float(upper[i]))
        if self.solver.Solve() != pywraplp.Solver.OPTIMAL:
            return None
        return np.array([v.solution_value() for v in self.prices]), self.t.solution_value()


@dataclass
class _Dual:
    prices: np.ndarray
    bound: float
    screens: list[_Screen]
    """Nested boxes around ``prices``, the whole problem's screen first."""
    choice: np.ndarray
    """The price-optimal choice at the first screen's centre (valid for its fixed ones)."""
    iterations: int
    converged: bool


def _minimise_dual(
    problem: _Problem,
    start: np.ndarray,
    radius: np.ndarray,
    deadline: float,
    tolerance: float,
    max_iterations: int = 500,
    *,
    trust_fraction: float = 1.0,
    null_steps: int = 5,
) -> _Dual:
    """Box-step bundle minimisation of L from ``start``, evaluated on screened customers.

    The trust region starts at ``trust_fraction`` of the box and halves after
    ``null_steps`` null steps in a row. From a sample's prices, close to the optimum, a
    quarter of the box and 3 null steps took 1M customers from 55 evaluations to 48 and
    1.4x less time; from zero prices (small problems) the whole box and 5 stay best (at
    10k, a quarter took 3.5x longer to reach the LP's gap).

    The trust region is kept inside a screened box (see ``_Screen``), so each evaluation
    costs only the customers whose choice can still change there. As the trust region
    shrinks, a tighter box is screened from the current one; when the model's minimum
    is blocked by the box, the box is dropped (or, at the outermost, re-screened wider).
    Every value computed is an exact value of L, so the best one is a certified bound.
    """
    m = problem.m
    radius = np.asarray(radius, dtype=np.float64).copy()
    center = np.asarray(start, dtype=np.float64).copy()
    outer, f_center, g, choice = _screen_all(problem, center, radius)
    screens = [outer]
    if m == 0:
        return _Dual(center, f_center, screens, choice, 1, True)
    trust = radius * trust_fraction
    cuts = Cuts(m)
    cuts.add(g, f_center, center)
    iterations, nulls, converged = 1, 0, False
    scale = np.maximum(radius, 1e-12)
    tried = np.full(m, np.inf)  # the trust region at the last screening that fixed nobody
    while iterations < max_iterations and time.monotonic() < deadline:
        box = screens[-1]
        wanted_lo, wanted_hi = np.maximum(0.0, center - trust), center + trust
        lower, upper = np.maximum(wanted_lo, box.lo), np.minimum(wanted_hi, box.hi)
        step = cuts.minimum(lower, upper)
        if step is None:
            break
        candidate, predicted = step
        decrease = f_center - predicted
        small = decrease <= tolerance * max(1.0, abs(f_center))
        eps = 1e-12 * scale
        blocked = ((candidate >= upper - eps) & (box.hi < wanted_hi - eps)) | (
            (candidate <= lower + eps) & (box.lo > wanted_lo + eps)
        )
        if blocked.any() and not small:
            if len(screens) > 1:
                screens.pop()
                continue
            # The model's minimum lies beyond the whole problem's screen: screen wider.
            radius = np.where(blocked, radius * 2.0, radius)
            outer, f_new, g_new, choice = _screen_all(problem, center, radius)
            screens = [outer]
            iterations += 1
            continue
        if small:
            at_trust = (candidate >= center + trust - eps) | (
                (candidate <= center - trust + eps) & (center - trust > 0)
            )
            if not at_trust.any() or np.all(trust >= radius * 1e6):
                converged = True
                break
            trust = trust * 4.0  # the model's minimum sits on the trust edge: look further
            continue
        f_sub, g_new, _ = box.part.best_response(candidate)
        f_new = box.fixed_value + f_sub
        iterations += 1
        cuts.add(g_new, f_new, candidate)
        if f_new <= f_center - 0.1 * decrease:
            on_edge = (candidate >= center + trust - eps) | (
                (candidate <= center - trust + eps) & (center - trust > 0)
            )
            center, f_center = candidate, f_new
            nulls = 0
            if np.any(on_edge):
                trust = trust * 2.0
        else:
            # A null step: the new cut sharpens the model; shrink the box only when cuts
            # alone keep failing to produce a serious step.
            nulls += 1
            if nulls >= null_steps:
                trust = np.maximum(trust * 0.5, 1e-12 * scale)
                nulls = 0
        box = screens[-1]
        # How far the box reaches from the centre: a side clipped at zero price does not
        # count (a price at zero would otherwise never let a nested box be screened).
        room = np.where(box.lo > 0, np.minimum(center - box.lo, box.hi - center), box.hi - center)
        if (
            len(box.rest) > 256
            and np.all(3.0 * trust <= room + 1e-300)
            and np.all(2.0 * trust <= tried)
            and np.all(center >= box.lo)
            and np.all(center <= box.hi)
        ):
            nested = _screen_within(box, center, 2.0 * trust)
            tried = trust.copy()
            if nested is not box:
                screens.append(nested)
    return _Dual(center, f_center, screens, choice, iterations, converged)


@dataclass
class _Relaxation:
    """The LP relaxation's answer: the optimal prices and, per customer, the action the
    LP gives most of it; ``split`` are the customers it shares between actions."""

    prices: np.ndarray
    choice: np.ndarray
    split: np.ndarray


def _price_floor(problem: _Problem) -> float:
    """A price too small to matter: 1e-9 of the largest value per unit of the largest use."""
    return float(1e-9 * (np.abs(problem.value).max() + 1.0) / (np.abs(problem.usage).max() + 1e-12))


def _lp_fits(problem: _Problem) -> bool:
    """Whether the LP relaxation can have at most ``LP_NONZEROS`` non-zeros."""
    return 2 * int(np.count_nonzero(problem.allowed)) <= LP_NONZEROS


def _lp_relaxation(problem: _Problem, deadline: float) -> _Relaxation | None:
    """Solve the LP relaxation with HiGHS (interior point, then crossover to a vertex,
    which splits at most M customers), for a problem that ``_lp_fits``; None when it
    has more than ``LP_NONZEROS`` non-zeros after all, fails or runs out of
    time (it may take half of what is left). Its dual prices minimise L exactly: the
    relaxation of "one action per customer" has integral vertices, so the LP's bound is
    the Lagrangian dual's."""
    import scipy.sparse as sparse

    rows_n, cols_k = np.nonzero(problem.allowed)
    pairs = len(rows_n)
    rows, cols, data = [], [], []
    nonzeros = 2 * pairs
    for m in range(problem.m):
        use = np.asarray(problem.usage[m][rows_n, cols_k], dtype=np.float64)
        used = np.nonzero(use)[0]
        nonzeros += len(used)
        if nonzeros > LP_NONZEROS:
            return None
        rows.append(np.full(len(used), m))
        cols.append(used)
        data.append(use[used])
    seconds = 0.5 * (deadline - time.monotonic())
    if seconds < 0.1:
        return None
    one_each = sparse.csr_matrix(
        (np.ones(pairs), (rows_n, np.arange(pairs))), shape=(problem.n, pairs)
    )
    within = sparse.csr_matrix(
        (np.concatenate(data), (np.concatenate(rows), np.concatenate(cols))),
        shape=(problem.m, pairs),
    )
    answer = linprog(
        -np.asarray(problem.value[rows_n, cols_k], dtype=np.float64),
        A_ub=within,
        b_ub=problem.limit,
        A_eq=one_each,
        b_eq=np.ones(problem.n),
        bounds=(0.0, 1.0),
        method="highs-ipm",
        options={"time_limit": seconds},
    )
    if answer.status != 0 or answer.x is None:
        return None
    share = np.full((problem.n, problem.k), -1.0)
    share[rows_n, cols_k] = answer.x
    choice = np.argmax(share, axis=1)
    split = np.nonzero(share[np.arange(problem.n), choice] < 1.0 - 1e-6)[0]
    prices = np.maximum(0.0, -np.asarray(answer.ineqlin.marginals, dtype=np.float64))
    return _Relaxation(prices, choice.astype(np.int64), split)


def _start(problem: _Problem, deadline: float, sample: int) -> tuple[np.ndarray, np.ndarray]:
    """Prices to start from and a box around them likely to hold the optimum.

    Large problems first solve the dual of a random sample of ``sample`` customers within
    the limits scaled down to it: its prices are within a few per cent of the whole
    problem's, at a fraction of a pass over the data. Small ones start from zero with a
    box wide enough for any price that matters.
    """
    m = problem.m
    if problem.n < 4 * sample or m == 0:
        return np.zeros(m), _wide(problem)
    rows = np.sort(np.random.default_rng(0).choice(problem.n, sample, replace=False))
    part = problem.subset(rows, problem.limit * (sample / problem.n))
    wide = _wide(part)
    prices = _minimise_dual(part, np.zeros(m), wide, deadline, 1e-7).prices
    assert part.spread is not None  # the sample's dual screened it
    typical = np.maximum(part.spread.mean(axis=1), 1e-12)
    charge = float(prices @ typical)
    if charge <= 0:
        gains = part.value.max(axis=1) - np.where(part.allowed, part.value, np.inf).min(axis=1)
        charge = float(np.mean(gains[np.isfinite(gains)])) if len(gains) else 1.0
    floor = 0.02 * charge / (m * typical)
    return prices, np.minimum(START_BOX * prices + floor, wide)


def _wide(problem: _Problem) -> np.ndarray:
    """Per limit, a price above which no customer would ever use that limit."""
    finite = np.where(problem.allowed, problem.value, 0.0)
    spread = float(np.abs(finite).max()) if finite.size else 1.0
    unit = np.maximum(problem.usage.max(axis=(1, 2)), -problem.usage.min(axis=(1, 2)))
    return np.maximum(2.0 * spread / np.maximum(unit.astype(np.float64), 1e-12), 1e-6)


def _repair(
    problem: _Problem, choice: np.ndarray, prices: np.ndarray, deadline: float = np.inf
) -> np.ndarray | None:
    """Move customers to cheaper actions until every limit holds; None if it cannot
    (or not before ``deadline``)."""
    choice = np.array(choice, dtype=np.int64)
    _, used = problem.totals(choice)
    slack_tol = _tolerance(problem)
    for _ in range(4 * problem.m + 20):
        over = used - problem.limit
        violated = over > slack_tol
        if not violated.any():
            return choice
        if time.monotonic() > deadline:
            return None
        # Weight each limit by how far it is over (relative), plus the prices.
        weight = np.where(violated, over / (np.abs(problem.limit) + 1.0), 0.0)
        weight = weight / max(weight.max(), 1e-300) + 1e-3 * prices / (prices.max() + 1e-300)
        # Each customer's cheapest relief: value given up per unit of weighted relief.
        best_ratio = np.empty(problem.n)
        best_action = np.empty(problem.n, dtype=np.int64)
        value, usage, allowed, every = problem._arrays()
        kernels.repair_ratios(
            value,
            usage,
            allowed,
            every,
            np.asarray(weight, dtype=np.float64),
            choice,
            0,
            problem.n,
            best_ratio,
            best_action,
        )
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
    order of value gain, each one that still fits given the moves taken before it.
    """
    choice = np.array(choice, dtype=np.int64)
    _, used = problem.totals(choice)
    ceiling = problem.limit + _tolerance(problem)
    value, usage, allowed, every = problem._arrays()
    target = np.empty(problem.n, dtype=np.int64)
    gain = np.empty(problem.n)
    for _ in range(3):
        problem.scored[0] += problem.n
        kernels.fill_candidates(
            value,
            usage,
            allowed,
            every,
            np.asarray(prices, dtype=np.float64),
            choice,
            0,
            problem.n,
            target,
            gain,
        )
        customers = np.nonzero(target >= 0)[0]
        if not len(customers):
            break
        order = np.argsort(-gain[customers], kind="stable")
        customers = customers[order]
        moves = target[customers]
        moved = np.zeros(len(customers), dtype=bool)
        if not kernels.fill_moves(usage, ceiling, used, customers, moves, choice, moved):
            break
        choice[customers[moved]] = moves[moved]
    return choice


def _primal(
    problem: _Problem,
    prices: np.ndarray,
    choice: np.ndarray,
    *,
    bound: float = np.inf,
    tolerance: float = 0.0,
    deadline: float = np.inf,
) -> np.ndarray | None:
    """The best feasible choice from the price-optimal ones at slightly raised prices.

    At the dual optimum, customers indifferent between actions make the price-optimal
    choice overshoot some limits; raising prices a little resolves most ties towards
    thrift, the repair fixes what remains, and the fill spends the slack left over.
    Which raise works best varies sharply from instance to instance (a raise of 1e-5
    gave a 2.6e-5 gap where 1e-4 gave 18% on one 20k portfolio), so several are tried,
    all prices or only the overshot limits', stopping once the gap to ``bound`` is
    within ``tolerance``.
    """
    best, best_objective = None, -np.inf
    floor = _price_floor(problem)
    over = problem.totals(choice)[1] > problem.limit
    trials: list[np.ndarray | None] = [None]
    for raise_by in (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 0.05, 0.2):
        trials.append(prices * (1.0 + raise_by) + floor)
        if over.any() and raise_by <= 1e-3:
            trials.append(prices + np.where(over, prices * raise_by + floor, 0.0))
    # Cheap first: a raise whose price-optimal choice already meets every limit needs no
    # repair (a pass over the customers, where a repair costs dozens), only the fill. On
    # the 1M offer portfolio the repairs of the smaller raises each moved two thirds of
    # the undecided customers and lost a third of their value, before a raise of 1e-4
    # met the limits outright.
    tol = _tolerance(problem)
    starts: dict[int, np.ndarray] = {}
    ready, ready_objective = None, -np.inf
    for index, raised in enumerate(trials):
        if raised is None:
            continue
        start = starts[index] = problem.best_response(raised)[2]
        objective, used = problem.totals(start)
        if np.all(used <= problem.limit + tol) and objective > ready_objective:
            ready, ready_objective = index, objective
    if ready is not None:
        best = _fill(problem, starts[ready], prices)
        best_objective = problem.totals(best)[0]
        if bound - best_objective <= tolerance * max(1.0, abs(bound)):
            return best
    for index, raised in enumerate(trials):
        if index == ready:
            continue
        start = choice if raised is None else starts[index]
        if best is not None and time.monotonic() > deadline:
            break
        repaired = _repair(problem, start, prices if raised is None else raised, deadline)
        if repaired is None:
            continue
        filled = _fill(problem, repaired, prices)
        objective, _ = problem.totals(filled)
        if objective > best_objective:
            best, best_objective = filled, objective
        if bound - best_objective <= tolerance * max(1.0, abs(bound)):
            break
    return best


def _near_primal(
    problem: _Problem,
    prices: np.ndarray,
    choice: np.ndarray,
    *,
    bound: float,
    allowed_gap: float,
    deadline: float,
) -> np.ndarray | None:
    """``_primal`` on the ``PRIMAL_NEAR`` customers the prices leave closest to a tie, the
    others kept at their price-optimal action; None unless it comes within ``allowed_gap``
    of ``bound`` (then the caller works on everyone).

    Moving a customer whose best action leads the runner-up by a wide margin costs that
    margin at least, so the repair and the fill would pass over them anyway; leaving
    them out makes each of the primal's trials cost a few thousand customers instead of
    the hundred thousand a large problem leaves undecided.
    """
    near = np.sort(_near_ties(problem, prices, limit_pairs=PRIMAL_NEAR * problem.k))
    others = np.ones(problem.n, dtype=bool)
    others[near] = False
    value_others, used_others = 0.0, np.zeros(problem.m)
    for rows in _chunks(problem.n):
        idx = np.nonzero(others[rows])[0]
        if not len(idx):
            continue
        picked = choice[rows][idx]
        value_others += float(problem.value[rows][idx, picked].sum(dtype=np.float64))
        used_others += problem.usage[:, rows, :][:, idx, picked].sum(axis=1, dtype=np.float64)
    sub = problem.subset(near, problem.limit - used_others)
    sub_bound = bound - value_others
    found = _primal(
        sub,
        prices,
        choice[near],
        bound=sub_bound,
        tolerance=allowed_gap / max(1.0, abs(sub_bound)),
        deadline=deadline,
    )
    if found is None or sub_bound - sub.totals(found)[0] > allowed_gap:
        return None
    out = choice.copy()
    out[near] = found
    return out


def _exact(
    problem: _Problem,
    customers: np.ndarray,
    choice: np.ndarray,
    seconds: float,
) -> tuple[np.ndarray, bool, float | None] | None:
    """Solve the sub-problem of ``customers`` exactly (others fixed) with SCIP.

    Returns the improved choice, whether SCIP proved optimality, and its best bound (of the
    sub-problem, valid for the whole only when every customer is included). The model is
    written as an ``MPModelProto``, a repeated field at a time: through the modelling API,
    20,000 pairs x 5 limits took 0.85 s of Python before SCIP started, against 0.08 s so.
    """
    from ortools.linear_solver import linear_solver_pb2, pywraplp

    solver = pywraplp.Solver.CreateSolver("SCIP")
    if solver is None or seconds <= 0:
        return None
    nn, kk, bounds, used_fixed = _pairs(problem, customers, choice)
    model = linear_solver_pb2.MPModelProto(maximize=True)
    for gain in problem.value[nn, kk].astype(np.float64).tolist():
        model.variable.add(
            lower_bound=0.0, upper_bound=1.0, objective_coefficient=gain, is_integer=True
        )
    for first, last in itertools.pairwise(bounds):
        row = model.constraint.add(lower_bound=1.0, upper_bound=1.0)
        row.var_index.extend(range(first, last))
        row.coefficient.extend(itertools.repeat(1.0, last - first))
    for m in range(problem.m):
        coefficients = problem.usage[m, nn, kk].astype(np.float64)
        used = np.nonzero(coefficients)[0]
        row = model.constraint.add(
            lower_bound=-np.inf, upper_bound=float(problem.limit[m] - used_fixed[m])
        )
        row.var_index.extend(used.tolist())
        row.coefficient.extend(coefficients[used].tolist())
    error = solver.LoadModelFromProto(model)
    if error:  # not expected: the proto is built above from finite numbers
        raise ValueError(f"SCIP refused the model: {error}")
    variables = solver.variables()
    solver.SetHint(variables, (choice[nn] == kk).astype(np.float64).tolist())
    solver.SetTimeLimit(max(1, int(seconds * 1000)))
    status = solver.Solve()
    if status == pywraplp.Solver.INFEASIBLE:
        raise _ProvenInfeasible
    if status not in (pywraplp.Solver.OPTIMAL, pywraplp.Solver.FEASIBLE):
        return None
    taken = np.array([var.solution_value() > 0.5 for var in variables], dtype=bool)
    improved = choice.copy()
    improved[nn[taken]] = kk[taken]
    return improved, status == pywraplp.Solver.OPTIMAL, float(solver.Objective().BestBound())


def _pairs(
    problem: _Problem, customers: np.ndarray, choice: np.ndarray
) -> tuple[np.ndarray, np.ndarray, list[int], np.ndarray]:
    """The exact search's variables over ``customers``, the others fixed at ``choice``.

    Variable i is customer ``nn[i]`` taking allowed action ``kk[i]``; the j-th customer's
    variables are ``bounds[j]:bounds[j + 1]``. Also (M,) what the others use of each limit.
    """
    customers = np.asarray(customers, dtype=np.int64)
    local, kk = np.nonzero(problem.allowed[customers])
    bounds = np.searchsorted(local, np.arange(len(customers) + 1)).tolist()
    fixed = np.ones(problem.n, dtype=bool)
    fixed[customers] = False
    used_fixed = np.zeros(problem.m)
    for rows in _chunks(problem.n):
        idx = np.nonzero(fixed[rows])[0]
        if len(idx):
            used_fixed += problem.usage[:, rows, :][:, idx, choice[rows][idx]].sum(axis=1)
    return customers[local], kk, bounds, used_fixed


def _integral_scales(problem: _Problem, customers: np.ndarray) -> int | None:
    """The power of ten making the sub-problem's values integral, if its use and limits
    already are (CP-SAT needs integers); None when the data are not integral."""
    usage = problem.usage[:, customers, :]
    if not np.all(np.abs(usage) < 2**31) or not np.all(usage == np.round(usage)):
        return None
    if not np.all(problem.limit == np.round(problem.limit)):
        return None
    value = np.where(problem.allowed[customers], problem.value[customers], 0.0)
    for scale in (1, 10, 100, 1000):
        scaled = value.astype(np.float64) * scale
        if np.all(np.abs(scaled) < 2**40) and np.allclose(
            scaled, np.round(scaled), rtol=0.0, atol=1e-9
        ):
            return scale
    return None


def _exact_cpsat(
    problem: _Problem,
    customers: np.ndarray,
    choice: np.ndarray,
    seconds: float,
    scale: int,
) -> tuple[np.ndarray, bool, float | None] | None:
    """As ``_exact``, with CP-SAT on integral data (its search proves these far faster).

    The model is written straight into CP-SAT's proto, a repeated field at a time: the
    expression API costs about a microsecond a term in Python (0.6 s for Yagiura's c15900,
    13,500 pairs x 15 limits, a tenth of its time budget; 0.07 s this way).
    """
    from ortools.sat.python import cp_model

    if seconds <= 0:
        return None
    nn, kk, bounds, used_fixed = _pairs(problem, customers, choice)
    count = len(nn)
    model = cp_model.CpModel()
    proto = model.proto
    for _ in range(count):
        proto.variables.add().domain.extend((0, 1))
    index = np.arange(count)
    proto.solution_hint.vars.extend(index.tolist())
    proto.solution_hint.values.extend((choice[nn] == kk).astype(np.int64).tolist())
    for first, last in itertools.pairwise(bounds):
        proto.constraints.add().exactly_one.literals.extend(range(first, last))
    for m in range(problem.m):
        coefficients = np.round(problem.usage[m, nn, kk]).astype(np.int64)
        used = np.nonzero(coefficients)[0]
        capacity = int(np.floor(problem.limit[m] - used_fixed[m] + 1e-9))
        if len(used):
            linear = proto.constraints.add().linear
            linear.vars.extend(used.tolist())
            linear.coeffs.extend(coefficients[used].tolist())
            linear.domain.extend((cp_model.INT_MIN, capacity))
        elif capacity < 0:
            raise _ProvenInfeasible
    gains = np.round(problem.value[nn, kk].astype(np.float64) * scale).astype(np.int64)
    paid = np.nonzero(gains)[0]
    if len(paid):  # maximise: CP-SAT minimises the negated sum, scaled back by -1
        proto.objective.vars.extend(paid.tolist())
        proto.objective.coeffs.extend((-gains[paid]).tolist())
        proto.objective.scaling_factor = -1.0
    else:
        proto.objective.scaling_factor = 1.0
    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = float(seconds)
    solver.parameters.num_workers = 2
    status = solver.solve(model)
    if status == cp_model.INFEASIBLE:
        raise _ProvenInfeasible
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return None
    taken = np.asarray(solver.response_proto.solution, dtype=np.int64)[index] > 0
    improved = choice.copy()
    improved[nn[taken]] = kk[taken]
    return improved, status == cp_model.OPTIMAL, float(solver.best_objective_bound / scale)


def _finish(
    problem: _Problem, customers: np.ndarray, choice: np.ndarray, seconds: float
) -> tuple[np.ndarray, bool, float | None] | None:
    """The exact search over ``customers``: CP-SAT when the data are integral, else SCIP."""
    scale = _integral_scales(problem, customers)
    if scale is not None:
        return _exact_cpsat(problem, customers, choice, seconds, scale)
    return _exact(problem, customers, choice, seconds)


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
    sample: int = SAMPLE,
) -> PortfolioSolution:
    """Choose one allowed action per customer, maximising value within the limits.

    ``usage`` is (M, N, K) in "<=" form (a ">=" limit is passed negated) and may be
    float32. Instances with at most ``exact_size`` allowed pairs go to the exact solver
    (CP-SAT on integral data, else SCIP) whole, and unless it proves its choice optimal
    in a tenth of the time, over cores of each customer's best actions at the prices
    (``CORE_PLAN``), then whole again; larger ones give it ``residual_seconds`` for the
    customers the prices leave nearly indifferent. Returns the choice, its objective, a
    proven upper bound and the certified gap, the dual prices, per-limit use and a status
    among optimal, feasible, infeasible, time_limit (stopped before finding a feasible
    choice).
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
        low, thrifty = problem.survey()
        alone = np.nonzero(low > limit + _tolerance(problem))[0]
        if len(alone):
            return infeasible(
                [int(i) for i in alone], "no choice meets these limits even on its own"
            )
        clash = m > 1 and np.any(thrifty > limit + _tolerance(problem))
        certificate = _feasibility_certificate(problem, deadline) if clash else None
        if certificate is not None:
            limits = [int(i) for i in np.nonzero(certificate > 1e-9)[0]]
            return infeasible(limits, "these limits contradict each other")

    # Prices must be precise for the price-optimal choice to be nearly feasible: a loose
    # dual leaves the repair to move thousands of customers (a 0.3% gap at 100k, not 1e-5).
    # With many limits the bundle may not converge (Yagiura's e801600: 500 steps, bound 21%
    # off); where the LP relaxation is small enough for HiGHS the bundle then gets a
    # share of the time and, if it has not converged by then, the LP gives the prices.
    lp_fallback = m >= LP_LIMITS and _lp_fits(problem)
    begin, radius = _start(problem, deadline, sample)
    sampled = problem.n >= 4 * sample and m > 0  # _start began from a sample's prices
    dual = _minimise_dual(
        problem,
        begin,
        radius,
        min(deadline, started + LP_BUNDLE_SHARE * (deadline - started))
        if lp_fallback
        else deadline,
        1e-9,
        trust_fraction=0.25 if sampled else 1.0,
        null_steps=3 if sampled else 5,
    )
    relaxation = None
    lp_tried = False
    if lp_fallback and not dual.converged:
        lp_tried = True
        relaxation = _lp_relaxation(problem, deadline)
        if relaxation is not None:
            # The LP's prices minimise L: evaluate it there (the certified bound) and
            # screen a hair's breadth around them, with no bundle steps.
            floor = _price_floor(problem)
            at_lp = _minimise_dual(
                problem,
                relaxation.prices,
                1e-6 * relaxation.prices + floor,
                deadline,
                1e-9,
                max_iterations=1,
            )
            if at_lp.bound <= dual.bound:
                dual = replace(at_lp, iterations=dual.iterations + 1, converged=True)
            else:  # not in exact arithmetic; keep the better bound and its prices
                relaxation = None
    prices, bound, iterations, converged = dual.prices, dual.bound, dual.iterations, dual.converged
    choice = dual.choice.copy()
    outer = dual.screens[0]
    if len(outer.rest) and len(outer.rest) < n:
        choice[outer.rest] = outer.part.best_response(prices)[2]
    elif len(outer.rest):
        choice = outer.part.best_response(prices)[2]
    # The customers the prices leave undecided are where the primal work is: the rest
    # keep their price-optimal action, which no price in the screened box changes.
    level = next(
        (box for box in reversed(dual.screens) if len(box.rest) >= min(n, PRIMAL_SIZE)), outer
    )

    def settle(relaxation: _Relaxation | None = None) -> np.ndarray | None:
        # Rounding the LP is the whole primal step there: it may take most of the time left.
        seconds = residual_seconds
        if relaxation is not None:
            seconds = max(seconds, 0.8 * (deadline - time.monotonic()))
        return _settle_near_ties(
            problem,
            prices,
            min(exact_size, RESIDUAL_PAIRS),
            seconds,
            deadline,
            good_enough=bound - 10 * tolerance * max(1.0, abs(bound)),
            relaxation=relaxation,
        )

    feasible = None
    settled_first = settled_enough = False
    allowed_gap = tolerance * max(1.0, abs(bound))
    pairs = int(mask.sum())
    # With the LP's answer (many limits) the repair, built for a few limits, is skipped:
    # on 80 it spent all of 5 s without a feasible choice. The exact search starts from the
    # LP's choice instead, on the whole problem or around the customers the LP splits.
    if relaxation is not None and pairs > exact_size:
        # Round the LP: its whole customers keep their action, the ones it splits and the
        # nearest ties are solved exactly in what the others leave.
        feasible = settle(relaxation)
        if feasible is not None:
            settled_enough = bound - problem.totals(feasible)[0] <= allowed_gap
    # Where the LP could still take over, the repair gets half of what is left: on 40 tight
    # limits it found nothing in 8 s from converged prices, where rounding the LP did.
    primal_deadline = deadline
    if lp_fallback and relaxation is None:
        primal_deadline = time.monotonic() + 0.5 * (deadline - time.monotonic())
    if m and len(level.rest) and not settled_enough and relaxation is None:
        part = None
        if len(level.rest) > 4 * PRIMAL_NEAR:
            part = _near_primal(
                level.part,
                prices,
                choice[level.rest],
                bound=bound - level.fixed_value,
                allowed_gap=allowed_gap,
                deadline=primal_deadline,
            )
            if part is None and n * k > exact_size:
                # Before repairing every undecided customer (10 s for 126,000 of 200,000
                # onboarding customers, to a gap of 1.2e-4): everyone at the price-optimal
                # action but the nearest ties, solved exactly (2.4 s there, to 3.9e-7).
                settled_first = True
                settled = settle()
                if settled is not None:
                    feasible = settled  # a whole choice: its fixed customers may differ
                    settled_enough = bound - problem.totals(settled)[0] <= allowed_gap
        if part is None and not settled_enough:
            part = _primal(
                level.part,
                prices,
                choice[level.rest],
                bound=bound - level.fixed_value,
                tolerance=allowed_gap / max(1.0, abs(bound - level.fixed_value)),
                deadline=primal_deadline,
            )
        if part is not None:
            candidate = choice.copy()
            candidate[level.rest] = part
            if feasible is None or problem.totals(candidate)[0] > problem.totals(feasible)[0]:
                feasible = candidate
    if feasible is None and relaxation is None:
        feasible = (
            _primal(
                problem, prices, choice, bound=bound, tolerance=tolerance, deadline=primal_deadline
            )
            if m
            else choice
        )
    if feasible is None and lp_fallback and not lp_tried:
        relaxation = _lp_relaxation(problem, deadline)
        if relaxation is not None and pairs > exact_size:
            feasible = settle(relaxation)  # else the exact search starts from the LP's choice
    proven = False
    remaining = deadline - time.monotonic()
    if pairs <= exact_size and m and remaining > 0:
        if feasible is not None:
            start = feasible
        else:
            start = relaxation.choice if relaxation is not None else choice
        searches = _exact_searches(problem, prices, start, feasible, deadline)
        try:
            for candidate, proven, exact_bound in searches:
                if exact_bound is not None:
                    bound = min(bound, exact_bound)
                reached, used = problem.totals(candidate)
                if np.all(used <= limit + _tolerance(problem)) and (
                    feasible is None or reached >= problem.totals(feasible)[0]
                ):
                    feasible = candidate
                if proven:
                    break
        except _ProvenInfeasible:
            return infeasible(
                [int(i) for i in range(m)],
                "no choice meets every limit at once (proven by exact search), although "
                "each can be met on its own",
            )
    elif feasible is not None and m and remaining > 0 and residual_seconds > 0:
        # The customers the prices leave nearly indifferent decide the residual gap.
        reached = problem.totals(feasible)[0]
        near = np.zeros(0, dtype=np.int64)
        if (bound - reached) / max(1.0, abs(bound)) > tolerance:
            near = level.rest[_near_ties(level.part, prices, limit_pairs=exact_size)]
            if len(near) and _integral_scales(problem, near) is None:
                # SCIP, not CP-SAT: its root LP over the 15,657 pairs of a 50,000-customer
                # onboarding run took 4.3 s of a 2 s limit and improved nothing. The
                # nearest ties first (a prefix: ``_near_ties`` sorts by the margin), as
                # many as the rounding of the LP gives SCIP.
                near = near[: max(1, min(exact_size, RESIDUAL_PAIRS) // problem.k)]
        if len(near):
            try:
                exact = _finish(problem, near, feasible, min(remaining, residual_seconds))
            except _ProvenInfeasible:  # impossible: the current choice is feasible
                exact = None
            if exact is not None:
                candidate = exact[0]
                objective_new, used = problem.totals(candidate)
                if np.all(used <= limit + _tolerance(problem)) and objective_new >= reached:
                    feasible, reached = candidate, objective_new
        remaining = deadline - time.monotonic()
        if (
            (bound - reached) / max(1.0, abs(bound)) > tolerance
            and remaining > 0
            and not settled_first
        ):
            settled = settle()
            if settled is not None and problem.totals(settled)[0] > reached:
                feasible = settled

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
        passes=problem.scored[0] / max(1, n),
    )


def _exact_searches(
    problem: _Problem,
    prices: np.ndarray,
    start: np.ndarray,
    feasible: np.ndarray | None,
    deadline: float,
) -> Iterator[tuple[np.ndarray, bool, float | None]]:
    """The exact search of a small problem, in steps: (choice, proven, bound) after each.

    First over everything for a share of the time; unless that proves the choice optimal,
    over cores (each customer's best few actions at ``prices``, and its action in the best
    choice so far), then over everything again from the best choice. Only a search over
    everything bounds the whole or proves it infeasible (``_ProvenInfeasible``); a core's
    bound is of the core alone and is not reported.
    """
    everyone = np.arange(problem.n)
    best = start
    best_value = problem.totals(feasible)[0] if feasible is not None else -np.inf
    remaining = deadline - time.monotonic()
    first = _finish(problem, everyone, best, EXACT_FIRST_SHARE * remaining)
    if first is not None:
        yield first
        if first[1]:
            return
        objective, used = problem.totals(first[0])
        if np.all(used <= problem.limit + _tolerance(problem)) and objective >= best_value:
            best, best_value = first[0], objective
    remaining = deadline - time.monotonic()
    scores = np.empty((problem.n, problem.k))
    for rows in _chunks(problem.n):
        scores[rows] = problem.reduced(prices, rows)
    # Each customer's actions ranked by price-adjusted value (not allowed: last).
    rank = np.argsort(np.argsort(-scores, axis=1, kind="stable"), axis=1, kind="stable")
    for size, share in CORE_PLAN:
        if size >= problem.allowed.sum(axis=1).max() or time.monotonic() >= deadline:
            break
        keep = problem.allowed & (rank < size)
        keep[everyone, best] |= problem.allowed[everyone, best]
        core = _Problem(problem.value, problem.usage, problem.limit, keep)
        try:
            found = _finish(core, everyone, best, share * remaining)
        except _ProvenInfeasible:  # the core is; the whole need not be
            continue
        if found is None:
            continue
        candidate = found[0]
        objective, used = problem.totals(candidate)
        if np.all(used <= problem.limit + _tolerance(problem)) and objective > best_value:
            best, best_value = candidate, objective
            yield candidate, False, None
    last = deadline - time.monotonic()
    if last > 0:
        final = _finish(problem, everyone, best, last)
        if final is not None:
            yield final


def _settle_near_ties(
    problem: _Problem,
    prices: np.ndarray,
    pairs: int,
    seconds: float,
    deadline: float,
    good_enough: float,
    relaxation: _Relaxation | None = None,
) -> np.ndarray | None:
    """Every customer at its price-optimal action except the nearest ties, which are solved
    exactly within what the others leave of each limit (None if they leave too little).

    The repair and fill start from the price-optimal choice and move customers one by one;
    this keeps it wholesale and spends the exact search where the prices cannot decide.
    It is what a distributed run does over chunks (``engine.distributed``). Given the LP
    ``relaxation``, the others keep the LP's action instead, and the customers it splits
    are solved with the ties.
    """
    near = _near_ties(problem, prices, limit_pairs=pairs)
    if relaxation is not None:
        near = np.union1d(near, relaxation.split)
    fixed = np.ones(problem.n, dtype=bool)
    fixed[near] = False
    floor = _price_floor(problem)
    best, best_objective, tries = None, -np.inf, 0
    for raise_by in RAISES if relaxation is None else (0.0,):
        if time.monotonic() > deadline:
            break
        # Raised prices make the fixed customers thriftier, leaving the ties more room.
        raised = prices * (1.0 + raise_by) + (floor if raise_by else 0.0)
        if relaxation is not None:
            choice = relaxation.choice.copy()
        else:
            choice = problem.best_response(raised)[2]
        used_fixed = np.zeros(problem.m)
        for rows in _chunks(problem.n):
            idx = np.nonzero(fixed[rows])[0]
            if len(idx):
                used_fixed += problem.usage[:, rows, :][:, idx, choice[rows][idx]].sum(
                    axis=1, dtype=np.float64
                )
        part = problem.subset(near, problem.limit - used_fixed)
        residual = solve_portfolio(
            np.asarray(part.value),
            np.asarray(part.usage),
            part.limit,
            allowed=part.allowed,
            time_limit=max(0.5, min(seconds, deadline - time.monotonic())),
            exact_size=max(pairs, int(part.allowed.sum())),  # all of it exactly
            residual_seconds=0.0,
        )
        if residual.status not in (OPTIMAL, FEASIBLE):
            continue
        tries += 1
        choice[near] = residual.choice
        objective, used = problem.totals(choice)
        if np.all(used <= problem.limit + _tolerance(problem)) and objective > best_objective:
            best, best_objective = choice, objective
        if residual.status == OPTIMAL or tries >= 2 or best_objective >= good_enough:
            break  # more raises only make the fixed customers thriftier still
    return best


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
