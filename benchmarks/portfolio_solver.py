"""Portfolio solver at scale: time, peak memory and certified gap.

    .venv/bin/python benchmarks/portfolio_solver.py [--customers 1000000] [--actions 8] [--limits 5]

Random instances shaped like a campaign: action 0 is "nothing" (no value, no use), the
others have value ~ N(1, 1) and use U(0, 1) of each limit, and each limit allows 10-30%
of what the unconstrained choice would use. Usage is float32, as the engine can pass it.
Also solves a 300-customer instance both ways (the Lagrangian path alone, and SCIP to
proven optimality) to show the heuristic's gap against the true optimum in the same run.
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np

from decisions.engine.portfolio import solve_portfolio


def instance(n: int, k: int, m: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    value = rng.normal(1, 1, size=(n, k)).astype(np.float32)
    value[:, 0] = 0
    usage = rng.uniform(0, 1, size=(m, n, k)).astype(np.float32)
    usage[:, :, 0] = 0
    limit = rng.uniform(0.1, 0.3, size=m) * n
    return value, usage, limit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--actions", type=int, default=8)
    parser.add_argument("--limits", type=int, default=5)
    parser.add_argument("--time-limit", type=float, default=300.0)
    args = parser.parse_args()

    value, usage, limit = instance(300, 5, 3, seed=1)
    exact = solve_portfolio(value, usage, limit)
    lagrangian = solve_portfolio(value, usage, limit, exact_size=0, residual_seconds=0)
    true_gap = (exact.objective - lagrangian.objective) / exact.objective
    print(
        f"300 x 5 x 3: SCIP {exact.status} {exact.objective:.4f}; Lagrangian path "
        f"{lagrangian.objective:.4f} (bound {lagrangian.bound:.4f}, certified gap "
        f"{lagrangian.gap:.2e}, true gap {true_gap:.2e})"
    )

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    value, usage, limit = instance(args.customers, args.actions, args.limits, seed=2)
    inputs = (value.nbytes + usage.nbytes) / 2**20
    started = time.perf_counter()
    solution = solve_portfolio(value, usage, limit, time_limit=args.time_limit)
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"{args.customers:,} x {args.actions} x {args.limits}: {solution.status} in "
        f"{seconds:.1f} s, {solution.iterations} dual iterations, certified gap "
        f"{solution.gap:.2e}; inputs {inputs:.0f} MiB, peak RSS {peak:.0f} MiB "
        f"(before the instance: {before:.0f} MiB)"
    )


if __name__ == "__main__":
    main()
