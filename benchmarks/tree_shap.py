"""Tree SHAP by lookup tables (``decisions.engine.fast_tree_shap``) against shap's C++,
side by side on the demo's HistGradientBoosting models.

    .venv/bin/python benchmarks/tree_shap.py [--rows 20000] [--seed 3]

For each model: the tables' build time and size, microseconds per row for a batch of
``--rows`` and for one row at a time (200 calls), both with the tables and with shap, the
ratio, and the largest difference between the two (they compute the same values).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import shap
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from decisions.engine.fast_tree_shap import compile_tree_shap
from decisions.simulator.training import train_models


def best_of(repeats: int, function) -> float:
    best = np.inf
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - started)
    return best


def measure(tables, explainer, rows: np.ndarray) -> tuple[float, float, float, float, float]:
    """Largest difference; us per row in a batch (tables, shap); us per single row (same)."""
    expected = np.asarray(explainer.shap_values(rows, check_additivity=False))
    difference = float(np.max(np.abs(tables.shap_values(rows) - expected)))
    fast = best_of(3, lambda: tables.shap_values(rows)) / len(rows) * 1e6
    slow = best_of(1, lambda: explainer.shap_values(rows, check_additivity=False))
    one = rows[:200]
    fast_one = best_of(3, lambda: [tables.shap_values(one[i : i + 1]) for i in range(200)])
    slow_one = best_of(
        3,
        lambda: [explainer.shap_values(one[i : i + 1], check_additivity=False) for i in range(200)],
    )
    return difference, fast, slow / len(rows) * 1e6, fast_one / 200 * 1e6, slow_one / 200 * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args()
    print("| model | trees | table values | build s | batch us/row tables | shap | ratio "
          "| one row us tables | shap | ratio | max difference |")  # fmt: skip
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for use_case in ("onboarding", "cross-sell", "collections"):
        for name, (pipeline, content) in train_models(use_case, seed=args.seed).items():
            final = pipeline[-1]
            if not hasattr(final, "_predictors"):
                continue
            sample = content["reference_sample"]
            reference = pd.DataFrame(sample["rows"], columns=sample["columns"])
            matrix = np.asarray(pipeline[:-1].transform(reference), dtype=np.float64)
            rows = np.resize(matrix, (args.rows, matrix.shape[1]))
            started = time.perf_counter()
            tables = compile_tree_shap(final)
            build = time.perf_counter() - started
            if tables is None:
                print(f"| {name} | tables not built: shap only |")
                continue
            explainer = shap.TreeExplainer(
                final, model_output="raw", feature_perturbation="tree_path_dependent"
            )
            difference, fast, slow, fast_one, slow_one = measure(tables, explainer, rows)
            print(
                f"| {name} | {len(final._predictors)} | {tables.values.size:,} | {build:.3f} "
                f"| {fast:.1f} | {slow:.1f} | {slow / fast:.1f}x | {fast_one:.1f} | "
                f"{slow_one:.1f} | {slow_one / fast_one:.1f}x | {difference:.1e} |"
            )


if __name__ == "__main__":
    with threadpool_limits(limits=1, user_api="openmp"):
        main()
