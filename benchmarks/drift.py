"""Drift of 1M logged rows x 20 features against a 100k reference: Evidently and PSI.

    .venv/bin/python benchmarks/drift.py [--rows 1000000] [--reference 100000]

Synthetic data (15 numeric, 5 categorical features; four of them shifted in the current
window). Each variant runs in its own process so its peak memory (max RSS) is its own:

- ``psi-full``: the project's PSI (``monitoring.psi``) on every row of the window;
- ``evidently-<n>``: Evidently's data-drift preset plus the score's value drift on a sample
  of n current rows against the whole reference (what ``drift_compare`` runs; the report
  states the sample size), for n = 20,000 (``DRIFT_SAMPLE_ROWS``) and 100,000;
- ``monitoring-run``: what one drift report for the window computes: Evidently on the
  20,000-row sample and PSI on all rows, side by side;
- ``evidently-<all rows>``: Evidently on the whole window, for comparison (stopped after
  ``--evidently-full-limit`` seconds).

Target (issue 6): the monitoring run for 1M rows <= 60 s on this machine. The rows are
built in memory: reading them from the decision log is not part of these figures.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

NUMERIC, CATEGORICAL = 15, 5
SHIFTED = ("x0", "x1", "c0", "score")


def frames(rows: int, reference: int):
    import numpy as np
    import pandas as pd

    def make(n: int, seed: int, shift: bool):
        rng = np.random.default_rng(seed)
        data = {}
        for i in range(NUMERIC):
            loc = 0.4 if shift and f"x{i}" in SHIFTED else 0.0
            data[f"x{i}"] = rng.normal(loc, 1.0, n)
        for i in range(CATEGORICAL):
            p = [0.4, 0.3, 0.2, 0.1]
            if shift and f"c{i}" in SHIFTED:
                p = [0.25, 0.25, 0.25, 0.25]
            data[f"c{i}"] = rng.choice(["a", "b", "c", "d"], n, p=p).astype(object)
        score = rng.beta(2.3 if shift else 2.0, 5.0, n)
        return pd.DataFrame(data), score

    schema = [{"name": f"x{i}", "type": "numeric"} for i in range(NUMERIC)]
    schema += [{"name": f"c{i}", "type": "categorical"} for i in range(CATEGORICAL)]
    ref, ref_score = make(reference, 1, False)
    cur, cur_score = make(rows, 2, True)
    return schema, ref, ref_score, cur, cur_score


def variant(name: str, rows: int, reference: int) -> dict:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "arbiter.settings.test")
    import django

    django.setup()  # the settings switch Evidently's telemetry off
    import numpy as np

    from monitoring import psi
    from monitoring.drift import drift_compare

    schema, ref, ref_score, cur, cur_score = frames(rows, reference)
    out: dict = {"variant": name}

    def all_psi() -> float:
        started = time.perf_counter()
        values = []
        for feature in schema:
            column = feature["name"]
            if feature["type"] == "numeric":
                values.append(psi.numeric_psi(ref[column].to_numpy(), cur[column].to_numpy()))
            else:
                values.append(psi.categorical_psi(ref[column].tolist(), cur[column].tolist()))
        values.append(psi.numeric_psi(ref_score, cur_score))
        out["psi_max"] = round(max(v.value for v in values), 4)
        return time.perf_counter() - started

    def evidently(sample: int) -> float:
        rng = np.random.default_rng(7)
        pick = np.sort(rng.choice(len(cur), size=min(sample, len(cur)), replace=False))
        started = time.perf_counter()
        result = drift_compare(
            schema=schema,
            reference=ref,
            current=cur.iloc[pick].reset_index(drop=True),
            reference_scores=ref_score,
            current_scores=cur_score[pick],
        )
        out["share_drifted"] = round(result.share_drifted, 3)
        out["drifted"] = sorted(f["name"] for f in result.features if f["drifted"])
        return time.perf_counter() - started

    if name == "psi-full":
        out["seconds"] = all_psi()
    elif name.startswith("evidently-"):
        out["seconds"] = evidently(int(name.split("-")[1]))
    elif name == "monitoring-run":
        e = evidently(20_000)
        p = all_psi()
        out.update(seconds=e + p, evidently_seconds=e, psi_seconds=p)
    out["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--reference", type=int, default=100_000)
    parser.add_argument(
        "--evidently-full-limit",
        type=float,
        default=600.0,
        help="seconds for Evidently on all rows",
    )
    parser.add_argument("--variant", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant:
        print(json.dumps(variant(args.variant, args.rows, args.reference)))
        return
    print(
        f"{args.rows:,} current rows x {NUMERIC + CATEGORICAL} features against "
        f"{args.reference:,} reference rows (shifted: {', '.join(SHIFTED)})"
    )
    print(
        "peak RSS includes building the synthetic frames "
        f"(about {args.rows * 20 * 8 / 2**20:,.0f} MiB of current data)\n"
    )
    names = ["psi-full", "evidently-20000", "evidently-100000", f"evidently-{args.rows}"]
    for name in [*names, "monitoring-run"]:
        full = name == f"evidently-{args.rows}"
        command = [sys.executable, __file__, "--variant", name, "--rows", str(args.rows)]
        command += ["--reference", str(args.reference)]
        try:
            result = subprocess.run(
                command,
                capture_output=True,
                text=True,
                cwd=ROOT,
                timeout=args.evidently_full_limit if full else None,
            )
        except subprocess.TimeoutExpired:
            print(f"{name:<18} did not finish in {args.evidently_full_limit:.0f} s")
            continue
        if result.returncode != 0:
            print(f"{name:<18} failed: {result.stderr.strip().splitlines()[-1:]}")
            continue
        data = json.loads(result.stdout.strip().splitlines()[-1])
        extra = ""
        if "evidently_seconds" in data:
            extra = (
                f" (Evidently {data['evidently_seconds']:.1f} s + PSI {data['psi_seconds']:.1f} s)"
            )
        found = (
            f"drifted {','.join(data['drifted'])}"
            if "drifted" in data
            else (f"max PSI {data['psi_max']}")
        )
        print(
            f"{name:<18} {data['seconds']:7.1f} s{extra}  peak RSS {data['peak_rss_mib']:,} MiB"
            f"  {found}"
        )
        if name == "monitoring-run":
            verdict = "MET" if data["seconds"] <= 60 else "MISSED"
            print(f"\ntarget: monitoring run for {args.rows:,} rows <= 60 s: {verdict}")


if __name__ == "__main__":
    main()
