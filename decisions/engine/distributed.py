"""The portfolio problem solved over chunks of customers that live apart.

A distributed optimisation run keeps each chunk's arrays (value, usage, allowed) in its
own folder of shared storage; workers read them (memory-mapped) and answer small
questions about them. The coordinator never holds a chunk: everything the method needs
per price iteration is a per-chunk sum. For prices ``p >= 0`` the dual function

    L(p) = p . limit + sum over chunks of sum_{n in chunk} max_k (value[n, k] - p . usage[:, n, k])

splits into per-chunk dual values, and its subgradient ``limit - used`` into per-chunk use
of each limit, so each evaluation is one round of chunk operations (``chunk_dual``) and
(M + 1) numbers back from each chunk.

The coordinator (``solve_chunks``):

1. surveys the chunks (limits no choice can meet end ``infeasible`` here);
2. takes a seeded random sample of customers from every chunk, in proportion to its size,
   and starts from the prices of that sample's dual (``solve_portfolio`` on the sample);
3. minimises L by the box-step cutting-plane method of ``portfolio`` (every evaluation
   exact, so the best value is a certified bound);
4. asks each chunk for its customers the final prices leave nearly indifferent (the
   smallest lead of the best action over the runner-up), keeps the smallest few thousand
   across chunks, fixes every other customer at its price-optimal action and solves the
   residual problem of the near-ties exactly with ``solve_portfolio`` (CP-SAT or SCIP)
   within what the fixed customers leave; when the fixed customers leave too little, they
   are fixed at slightly raised prices, which make them thriftier;
5. writes each chunk's final choice into its folder (``choice.npy``).

An ``Executor`` runs the operations: ``LocalExecutor`` in this process, one chunk after
the other; the Django side has one that sends each round to Celery workers as a group.
Every operation is deterministic and every sum is taken in chunk order, so both give the
same prices and objective. No Django here.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from decisions.engine.portfolio import (
    FEASIBLE,
    INFEASIBLE,
    OPTIMAL,
    RAISES,
    RESIDUAL_PAIRS,
    SAMPLE,
    START_BOX,
    TIME_LIMIT,
    Cuts,
    _Problem,
    solve_portfolio,
)

ARRAYS = ("value", "usage", "allowed")
CHOICE = "choice.npy"


def save_replacing(target: Path, write: Callable[[Any], None]) -> None:
    """Write ``target`` through a scratch file of this writer's own, then rename it in.

    A chunk operation may run twice at once (a worker presumed lost was only slow, and
    its chunk was sent again): each writer has its own scratch file, and readers only
    ever see a whole file, the last one renamed in.
    """
    scratch = target.with_name(f".{target.name}.{uuid.uuid4().hex}.partial")
    try:
        with scratch.open("wb") as handle:
            write(handle)
        scratch.replace(target)
    finally:
        scratch.unlink(missing_ok=True)


# --- the chunk side -------------------------------------------------------------------------


def chunk_write(
    directory: str | Path, value: np.ndarray, usage: np.ndarray, allowed: np.ndarray
) -> None:
    """Store one chunk's arrays: value (n, K), usage (M, n, K) in "<=" form, allowed (n, K)."""
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    n, k = value.shape
    if usage.shape[1:] != (n, k) or allowed.shape != (n, k):
        raise ValueError("usage must be (M, n, K) and allowed (n, K) for value (n, K)")
    for name, array in zip(ARRAYS, (value, usage, allowed.astype(bool)), strict=True):
        contiguous = np.ascontiguousarray(array)
        save_replacing(
            folder / f"{name}.npy",
            lambda handle, a=contiguous: np.save(handle, a, allow_pickle=False),
        )


def _chunk(directory: str, limit: Sequence[float] | None = None) -> _Problem:
    folder = Path(directory)
    value, usage, allowed = (
        np.load(folder / f"{name}.npy", mmap_mode="r", allow_pickle=False) for name in ARRAYS
    )
    m = usage.shape[0]
    bound = np.zeros(m) if limit is None else np.asarray(limit, dtype=np.float64)
    return _Problem(value, usage, bound, np.asarray(allowed) & np.isfinite(value))


def chunk_survey(directory: str, limit: list[float]) -> dict[str, Any]:
    """Size, the least use of each limit, the thriftiest choice's use, and the scales of
    value and use (for the widest price that matters)."""
    part = _chunk(directory, limit)
    stuck = np.flatnonzero(~part.allowed.any(axis=1))
    low, thrifty = part.survey() if part.m else (np.zeros(0), np.zeros(0))
    finite = np.where(part.allowed, part.value, 0.0)
    unit = np.maximum(part.usage.max(axis=(1, 2)), -part.usage.min(axis=(1, 2)))
    return {
        "n": part.n,
        "k": part.k,
        "m": part.m,
        "stuck": int(stuck[0]) if len(stuck) else None,
        "low": low.tolist(),
        "thrifty": thrifty.tolist(),
        "spread": float(np.abs(finite).max()) if finite.size else 0.0,
        "unit": unit.astype(np.float64).tolist(),
    }


def chunk_sample(directory: str, count: int, seed: int) -> dict[str, Any]:
    """``count`` random customers of the chunk (seeded), with their arrays."""
    part = _chunk(directory)
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(part.n, min(count, part.n), replace=False))
    return _rows_payload(part, rows)


def chunk_dual(directory: str, prices: list[float]) -> dict[str, Any]:
    """The chunk's share of L at ``prices`` (without p . limit) and its use of each limit
    by the price-optimal choice."""
    part = _chunk(directory)
    total, grad, _ = part.best_response(np.asarray(prices, dtype=np.float64))
    return {"value": total, "used": (-grad).tolist()}


def chunk_ties(directory: str, prices: list[float], count: int) -> dict[str, Any]:
    """The ``count`` customers whose best price-adjusted action leads the runner-up least."""
    part = _chunk(directory)
    p = np.asarray(prices, dtype=np.float64)
    margin = np.full(part.n, 1e300)
    if part.k > 1:
        for start in range(0, part.n, 65_536):
            rows = slice(start, min(part.n, start + 65_536))
            top = np.partition(part.reduced(p, rows), -2, axis=1)[:, -2:]
            with np.errstate(invalid="ignore"):
                margin[rows] = np.nan_to_num(top[:, 1] - top[:, 0], nan=1e300, posinf=1e300)
    order = np.argsort(margin, kind="stable")[: min(count, part.n)]
    return {"rows": order.tolist(), "margins": margin[order].tolist()}


def chunk_settle(
    directory: str,
    prices: list[float],
    rows: list[int],
    actions: list[int] | None = None,
    *,
    send_rows: bool = False,
    write: bool = False,
) -> dict[str, Any]:
    """Every customer at its price-optimal action at ``prices``, except ``rows``.

    Returns the value and use of the others (``fixed_*``) and, with ``actions`` for
    ``rows``, of the whole chunk; ``send_rows`` adds the arrays of ``rows`` and ``write``
    stores the choice as ``choice.npy``.
    """
    part = _chunk(directory)
    _, _, choice = part.best_response(np.asarray(prices, dtype=np.float64))
    index = np.asarray(rows, dtype=np.int64)
    mine = np.zeros(part.n, dtype=bool)
    mine[index] = True
    fixed_value, fixed_used = _sums(part, choice, ~mine)
    out: dict[str, Any] = {"fixed_value": fixed_value, "fixed_used": fixed_used.tolist()}
    if actions is not None:
        choice[index] = np.asarray(actions, dtype=np.int64)
        if not part.allowed[index, choice[index]].all():
            raise ValueError("an assigned action is not allowed for its customer")
        value, used = _sums(part, choice, np.ones(part.n, dtype=bool))
        out.update(value=value, used=used.tolist())
    if send_rows:
        out["arrays"] = _rows_payload(part, index)
    if write:
        save_replacing(
            Path(directory) / CHOICE,
            lambda handle: np.save(handle, choice, allow_pickle=False),
        )
    return out


def chunk_choice(directory: str | Path) -> np.ndarray:
    """The chunk's final choice, as ``chunk_settle(write=True)`` stored it."""
    return np.load(Path(directory) / CHOICE, allow_pickle=False)


def _sums(part: _Problem, choice: np.ndarray, keep: np.ndarray) -> tuple[float, np.ndarray]:
    rows = np.flatnonzero(keep)
    picked = choice[rows]
    value = float(np.asarray(part.value[rows, picked], dtype=np.float64).sum())
    used = (
        np.asarray(part.usage[:, rows, picked], dtype=np.float64).sum(axis=1)
        if part.m
        else np.zeros(0)
    )
    return value, used


def _rows_payload(part: _Problem, rows: np.ndarray) -> dict[str, Any]:
    # Floats go as Python floats: JSON carries them exactly (repr round-trips).
    return {
        "value": np.asarray(part.value[rows], dtype=np.float64).tolist(),
        "usage": np.asarray(part.usage[:, rows, :], dtype=np.float64).tolist(),
        "allowed": part.allowed[rows].tolist(),
    }


OPERATIONS: dict[str, Callable[..., dict[str, Any]]] = {
    "survey": chunk_survey,
    "sample": chunk_sample,
    "dual": chunk_dual,
    "ties": chunk_ties,
    "settle": chunk_settle,
}


# --- the coordinator ------------------------------------------------------------------------


class Executor(Protocol):
    def map(self, operation: str, calls: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """Run ``OPERATIONS[operation](**call)`` for every call; results in call order."""
        ...


class LocalExecutor:
    """Every chunk operation in this process, one after the other."""

    def map(self, operation: str, calls: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        return [OPERATIONS[operation](**call) for call in calls]


@dataclass(frozen=True)
class ChunkedSolution:
    objective: float
    bound: float
    gap: float
    prices: np.ndarray
    status: str
    infeasible_limits: list[int] = field(default_factory=list)
    usage: np.ndarray | None = None
    iterations: int = 0
    """Price iterations (evaluations of L)."""
    rounds: int = 0
    """Rounds of chunk operations, all phases."""
    residual: int = 0
    """Customers solved exactly on the coordinator."""
    message: str = ""


class _Rounds:
    def __init__(self, executor: Executor, chunks: Sequence[str], hook: Callable | None) -> None:
        self.executor, self.chunks, self.hook, self.count = executor, list(chunks), hook, 0

    def __call__(
        self, operation: str, per_chunk: Callable[[int], dict[str, Any]]
    ) -> list[dict[str, Any]]:
        calls = [{"directory": d, **per_chunk(i)} for i, d in enumerate(self.chunks)]
        results = self.executor.map(operation, calls)
        self.count += 1
        if self.hook is not None:
            self.hook(operation, self.count)
        return results


def _stack(payloads: list[dict[str, Any]], m: int, k: int) -> tuple[np.ndarray, ...]:
    value = np.concatenate(
        [np.asarray(p["value"], dtype=np.float64).reshape(-1, k) for p in payloads]
    )
    usage = np.concatenate(
        [np.asarray(p["usage"], dtype=np.float64).reshape(m, -1, k) for p in payloads], axis=1
    )
    allowed = np.concatenate(
        [np.asarray(p["allowed"], dtype=bool).reshape(-1, k) for p in payloads]
    )
    return value, usage, allowed


def solve_chunks(
    executor: Executor,
    chunks: Sequence[str],
    limit: np.ndarray,
    *,
    time_limit: float | None = None,
    tolerance: float = 1e-6,
    residual_pairs: int = RESIDUAL_PAIRS,
    residual_seconds: float = 2.0,
    sample: int = SAMPLE,
    max_iterations: int = 300,
    on_round: Callable[[str, int], None] | None = None,
) -> ChunkedSolution:
    """``solve_portfolio`` for customers split over ``chunks`` (folders ``chunk_write``
    made), through ``executor``. Each chunk's choice ends in its folder (``chunk_choice``).

    ``on_round(operation, rounds)`` is called after every round (a run reports progress
    and honours cancellation there by raising).
    """
    started = time.monotonic()
    deadline = started + (time_limit if time_limit is not None else 3600.0)
    limit = np.asarray(limit, dtype=np.float64).reshape(-1)
    m = len(limit)
    rounds = _Rounds(executor, chunks, on_round)
    listed = limit.tolist()

    survey = rounds("survey", lambda i: {"limit": listed})
    sizes = [s["n"] for s in survey]
    n, k = sum(sizes), survey[0]["k"]
    if any(s["m"] != m for s in survey):
        raise ValueError(f"the chunks' usage has {survey[0]['m']} limits but limit has {m}")

    def infeasible(limits: list[int], message: str) -> ChunkedSolution:
        return ChunkedSolution(
            objective=float("-inf"),
            bound=float("-inf"),
            gap=float("inf"),
            prices=np.zeros(m),
            status=INFEASIBLE,
            infeasible_limits=limits,
            rounds=rounds.count,
            message=message,
        )

    for i, s in enumerate(survey):
        if s["stuck"] is not None:
            return infeasible([], f"customer {sum(sizes[:i]) + s['stuck']} has no allowed action")
    tol = 1e-9 * (np.abs(limit) + 1.0) * max(1, n) ** 0.5
    low = np.sum([s["low"] for s in survey], axis=0) if m else np.zeros(0)
    alone = np.flatnonzero(low > limit + tol)
    if len(alone):
        return infeasible([int(i) for i in alone], "no choice meets these limits even on its own")
    thrifty = np.sum([s["thrifty"] for s in survey], axis=0) if m else np.zeros(0)

    # The widest price that matters, per limit; then the start: a sample's dual prices.
    spread = max(s["spread"] for s in survey) or 1.0
    unit = np.max([s["unit"] for s in survey], axis=0) if m else np.zeros(0)
    wide = np.maximum(2.0 * spread / np.maximum(unit, 1e-12), 1e-6)
    prices = np.zeros(m)
    trust = wide.copy()
    if m and n >= 4 * sample:
        counts = [max(1, round(sample * size / n)) for size in sizes]
        payloads = rounds("sample", lambda i: {"count": counts[i], "seed": i})
        value_s, usage_s, allowed_s = _stack(payloads, m, k)
        share = len(value_s) / n
        start = solve_portfolio(
            value_s,
            usage_s,
            limit * share,
            allowed=allowed_s,
            time_limit=max(1.0, deadline - time.monotonic()),
            exact_size=0,
            residual_seconds=0.0,
        )
        prices = np.asarray(start.prices, dtype=np.float64)
        # Half the single-process box: with 3 null steps before shrinking (below), 17-21%
        # fewer rounds on 200k and 1M offer portfolios, 6-14% on random ones.
        trust = np.minimum(np.maximum(0.5 * START_BOX * prices, 1e-4 * wide), wide)

    # The dual, by the box-step cutting-plane method: every value is an exact L.
    def dual(p: np.ndarray) -> tuple[float, np.ndarray]:
        listed_p = p.tolist()
        parts = rounds("dual", lambda i: {"prices": listed_p})
        total = float(p @ limit) + float(sum(r["value"] for r in parts))
        used = np.sum([r["used"] for r in parts], axis=0) if m else np.zeros(0)
        return total, limit - used

    f_center, g = dual(prices)
    best_f = f_center
    center = prices.copy()
    iterations, converged = 1, m == 0
    cuts = Cuts(m)
    cuts.add(g, f_center, center)
    nulls = 0
    scale = np.maximum(wide, 1e-12)
    while not converged and iterations < max_iterations and time.monotonic() < deadline:
        lower, upper = np.maximum(0.0, center - trust), center + trust
        step = cuts.minimum(lower, upper)
        if step is None:
            break
        candidate, predicted = step
        decrease = f_center - predicted
        eps = 1e-12 * scale
        on_edge = (candidate >= upper - eps) | ((candidate <= lower + eps) & (lower > 0))
        if decrease <= 1e-9 * max(1.0, abs(f_center)):
            if not on_edge.any() or np.all(trust >= wide):
                converged = True
                break
            trust = np.minimum(trust * 4.0, wide)
            continue
        f_new, g_new = dual(candidate)
        iterations += 1
        best_f = min(best_f, f_new)
        cuts.add(g_new, f_new, candidate)
        if f_new <= f_center - 0.1 * decrease:
            center, f_center, nulls = candidate, f_new, 0
            if on_edge.any():
                trust = np.minimum(trust * 2.0, wide)
        else:
            nulls += 1
            if nulls >= 3:
                trust = np.maximum(trust * 0.5, 1e-12 * scale)
                nulls = 0
    prices, bound = center, best_f

    # The primal: near-ties solved exactly, everyone else at the price-optimal action.
    per_chunk = max(1, residual_pairs // max(1, k))
    listed_p = prices.tolist()
    ties = rounds("ties", lambda i: {"prices": listed_p, "count": per_chunk})
    candidates = sorted(
        (margin, i, row)
        for i, t in enumerate(ties)
        for row, margin in zip(t["rows"], t["margins"], strict=True)
    )[:per_chunk]
    chosen: list[list[int]] = [[] for _ in chunks]
    for _, i, row in sorted(candidates, key=lambda c: (c[1], c[2])):
        chosen[i].append(row)
    floor = 1e-9 * (spread + 1.0) / (float(unit.max()) + 1e-12 if m else 1.0)
    arrays = None
    best: tuple[float, np.ndarray, list[np.ndarray]] | None = None
    tries = 0
    for raise_by in RAISES if m else (0.0,):
        if best is not None and time.monotonic() > deadline:
            break
        raised = prices * (1.0 + raise_by) + (floor if raise_by else 0.0)
        raised_listed = raised.tolist()
        settled = rounds(
            "settle",
            lambda i, p=raised_listed, send=arrays is None: {
                "prices": p,
                "rows": chosen[i],
                "send_rows": send,
            },
        )
        if arrays is None:
            arrays = _stack([s["arrays"] for s in settled], m, k)
        fixed_value = float(sum(s["fixed_value"] for s in settled))
        fixed_used = np.sum([s["fixed_used"] for s in settled], axis=0) if m else np.zeros(0)
        rest = limit - fixed_used
        if not len(arrays[0]):
            if np.all(rest >= -tol):
                best = (fixed_value, raised, [])
                break
            continue
        residual = solve_portfolio(
            arrays[0],
            arrays[1],
            rest,
            allowed=arrays[2],
            time_limit=max(0.5, min(residual_seconds, deadline - time.monotonic())),
            exact_size=residual_pairs,
            residual_seconds=0.0,
        )
        if residual.status not in (OPTIMAL, FEASIBLE):
            continue
        total = fixed_value + residual.objective
        tries += 1
        if best is None or total > best[0]:
            split = np.cumsum([len(c) for c in chosen])[:-1]
            best = (total, raised, np.split(residual.choice, split))
        # Raising prices only makes the fixed customers thriftier: once the residual is
        # solved to optimality or the whole is close to the bound, or after a second
        # feasible try, more raises cannot pay.
        if (
            residual.status == OPTIMAL
            or tries >= 2
            or (bound - best[0]) / max(1.0, abs(bound)) <= 10 * tolerance
        ):
            break
    if best is None:
        over = [int(i) for i in np.flatnonzero(thrifty > limit + tol)]
        return ChunkedSolution(
            objective=float("-inf"),
            bound=bound,
            gap=float("inf"),
            prices=prices,
            status=TIME_LIMIT,
            infeasible_limits=over,
            iterations=iterations,
            rounds=rounds.count,
            message="no choice within the limits was found"
            + (" (the thriftiest choice already breaks some)" if over else ""),
        )
    _, raised, actions = best
    raised_listed = raised.tolist()
    final = rounds(
        "settle",
        lambda i: {
            "prices": raised_listed,
            "rows": chosen[i],
            "actions": actions[i].tolist() if len(chosen[i]) else [],
            "write": True,
        },
    )
    objective = float(sum(s["value"] for s in final))
    used = np.sum([s["used"] for s in final], axis=0) if m else np.zeros(0)
    gap = max(0.0, (bound - objective) / max(1.0, abs(bound)))
    if gap <= tolerance:
        status = OPTIMAL
    elif not converged and time.monotonic() >= deadline:
        status = TIME_LIMIT if not np.all(used <= limit + tol) else FEASIBLE
    else:
        status = FEASIBLE
    return ChunkedSolution(
        objective=objective,
        bound=bound,
        gap=gap,
        prices=prices,
        status=status,
        usage=used,
        iterations=iterations,
        rounds=rounds.count,
        residual=sum(len(c) for c in chosen),
    )


__all__ = [
    "OPERATIONS",
    "ChunkedSolution",
    "Executor",
    "LocalExecutor",
    "chunk_choice",
    "chunk_write",
    "solve_chunks",
]
