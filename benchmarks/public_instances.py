"""The portfolio solver on the public MMKP and GAP instances, against published values.

    .venv/bin/python benchmarks/public_instances.py [--data ../shared/benchmarks/optimisation]
        [--time-limit 9.5] [--only khan,gap1]

The instances are read from the shared folder (not copied into the project): the path is
``--data``, else ``$ARBITER_OPTIMISATION_DATA``, else ``../shared/benchmarks/optimisation``
relative to the repository. Each instance is solved by ``solve_portfolio`` with default
settings and ``time_limit`` (9.5 s, so that setting up and checking fit in 10 s); the
table gives our value, the published one, the relative difference (positive: worse
than published) and the wall time. Targets: the published
optimum on Khan I01-I06, GAP gap1, gap12 and gapa-gapc; within 0.05% of the best known
value on the others; at most 10 s each.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.instance_formats import (  # noqa: E402
    Instance,
    gap_instances,
    hifi_instance,
    hiremath_hill_instances,
    khan_instance,
    yagiura_instance,
)
from decisions.engine.portfolio import solve_portfolio  # noqa: E402

OPTIMUM, BEST = "optimum", "best known"
WITHIN = 5e-4  # 0.05%
GAP_ORDER = ("5x100", "5x200", "10x100", "10x200", "20x100", "20x200")

KHAN = {
    "I01": (173, OPTIMUM),
    "I03": (1602, OPTIMUM),
    "I06": (4799.3, OPTIMUM),
    "I07": (24595, BEST),
    "I09": (49171, BEST),
    "I13": (98441, BEST),
}
HIFI = {
    "INST01": 10714,
    "INST12": 21719,
    "INST21": 44212,
    "INST27": 87564,
    "INST30": 214130,
    "I07_lucadibello_format": 24595,
}
HIREMATH_HILL = {  # file -> label of its problems in reference/hiremath_hill_exact_values.csv
    "TestSet1.5GP10IT5KP": "TestSet1.5GP10IT5KP",
    "TestSet.100GP10IT10KP": "TestSet1.100GP10IT10KP",
    "TestSet.400GP10IT10KP": "TestSet1.400GP10IT10KP",
}
GAP_ORLIB = {  # file -> (sense, published values, kind of each)
    ("gap1", "min"): ([261, 269, 256, 274, 251], [OPTIMUM] * 5),
    ("gap1", "max"): ([336, 327, 339, 341, 326], [OPTIMUM] * 5),
    ("gap12", "min"): ([974, 956, 941, 954, 945], [OPTIMUM] * 5),
    ("gap12", "max"): ([1451, 1449, 1433, 1447, 1446], [OPTIMUM] * 5),
    ("gapa", "min"): ([1698, 3235, 1360, 2623, 1158, 2339], [OPTIMUM] * 6),
    ("gapb", "min"): ([1843, 3552, 1407, 2827, 1166, 2339], [OPTIMUM] * 6),
    ("gapc", "min"): ([1931, 3456, 1402, 2806, 1243, 2391], [OPTIMUM] * 6),
    ("gapd", "min"): ([6353, 12742, 6347, 12430, 6185, 12238], [BEST] * 6),
}
YAGIURA = {
    "e10100": 11577,
    "e20200": 22379,
    "c15900": 11340,
    "d20400": 24567,
    "e801600": 176820,
}


@dataclass(frozen=True)
class Case:
    instance: Instance
    published: float
    kind: str
    """OPTIMUM: the target is the published optimum; BEST: within 0.05% of it."""
    group: str


def data_root(option: str | None) -> Path:
    chosen = option or os.environ.get("ARBITER_OPTIMISATION_DATA")
    root = Path(chosen) if chosen else REPO / ".." / "shared" / "benchmarks" / "optimisation"
    if not (root / "README.md").exists():
        raise SystemExit(f"no benchmark instances at {root} (use --data or the env var)")
    return root


def cases(root: Path) -> Iterator[Case]:
    for stem, (published, kind) in KHAN.items():
        text = (root / "mmkp_khan" / f"{stem}.txt").read_text()
        yield Case(khan_instance(text, f"Khan {stem}"), published, kind, "Khan MMKP")
    for stem, published in HIFI.items():
        text = (root / "mmkp_hifi" / f"{stem}.txt").read_text()
        yield Case(hifi_instance(text, f"Hifi {stem}"), published, BEST, "Hifi MMKP")
    exact: dict[tuple[str, int], float] = {}
    with open(root / "reference" / "hiremath_hill_exact_values.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            key = (row["test_set_label_in_xls"], int(row["problem_no"]))
            exact[key] = float(row["exact_xpress"])
    for stem, label in HIREMATH_HILL.items():
        text = (root / "mmkp_hiremath_hill" / f"{stem}.txt").read_text()
        for number, instance in enumerate(hiremath_hill_instances(text, stem), start=1):
            group = f"Hiremath-Hill {stem.split('.')[1]}"
            yield Case(instance, exact[(label, number)], BEST, group)
    for (stem, sense), (values, kinds) in GAP_ORLIB.items():
        text = (root / "gap_orlib" / f"{stem}.txt").read_text()
        problems = gap_instances(text, stem, sense=sense)
        for index, (instance, published, kind) in enumerate(
            zip(problems, values, kinds, strict=True)
        ):
            label = GAP_ORDER[index] if len(problems) == 6 else str(index + 1)
            name = f"GAP {stem}-{label} {sense}"
            yield Case(_renamed(instance, name), published, kind, f"GAP {stem} {sense}")
    for stem, published in YAGIURA.items():
        text = (root / "gap_yagiura" / f"{stem}.txt").read_text()
        yield Case(yagiura_instance(text, f"Yagiura {stem}"), published, BEST, "GAP Yagiura")


def _renamed(instance: Instance, name: str) -> Instance:
    return Instance(
        name=name,
        value=instance.value,
        usage=instance.usage,
        limit=instance.limit,
        allowed=instance.allowed,
        sense=instance.sense,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", help="the folder of instances (default: see above)")
    parser.add_argument("--time-limit", type=float, default=9.5)
    parser.add_argument("--only", help="comma-separated substrings of instance names")
    args = parser.parse_args()
    root = data_root(args.data)
    wanted = [part.strip().lower() for part in args.only.split(",")] if args.only else None

    header = (
        f"| {'instance':<32} | {'N x K x M':<13} | {'ours':>10} | {'published':>10} "
        f"| {'kind':<10} | {'diff':>8} | {'time s':>6} | {'status':<10} | met |"
    )
    print(header)
    print("|" + "|".join("-" * (len(cell)) for cell in header.split("|")[1:-1]) + "|")
    rows = []
    for case in cases(root):
        instance = case.instance
        if wanted and not any(word in instance.name.lower() for word in wanted):
            continue
        started = time.perf_counter()
        solution = solve_portfolio(
            instance.value,
            instance.usage,
            instance.limit,
            allowed=instance.allowed,
            time_limit=args.time_limit,
        )
        seconds = time.perf_counter() - started
        ours = instance.score(solution.choice) if solution.objective > -np.inf else np.nan
        feasible = solution.objective > -np.inf and instance.feasible(solution.choice)
        sign = 1.0 if instance.sense == "min" else -1.0  # positive diff = worse
        diff = sign * (ours - case.published) / abs(case.published)
        good = feasible and diff <= (1e-9 if case.kind == OPTIMUM else WITHIN)
        met = good and seconds <= 10.0
        rows.append((case, ours, diff, seconds, met, solution.status))
        n, k = instance.value.shape
        m = instance.limit.shape[0]
        print(
            f"| {instance.name:<32} | {f'{n}x{k}x{m}':<13} | {ours:>10.2f} | "
            f"{case.published:>10.2f} | {case.kind:<10} | {diff:>8.2e} | {seconds:>6.2f} | "
            f"{solution.status:<10} | {'yes' if met else 'NO'} |",
            flush=True,
        )

    print()
    print("| group | instances | targets met | worst diff | max time s |")
    print("|---|---|---|---|---|")
    groups: dict[str, list] = {}
    for row in rows:
        groups.setdefault(row[0].group, []).append(row)
    for group, members in groups.items():
        print(
            f"| {group} | {len(members)} | {sum(r[4] for r in members)} | "
            f"{max(r[2] for r in members):.2e} | {max(r[3] for r in members):.2f} |"
        )
    print(
        f"\n{sum(r[4] for r in rows)} of {len(rows)} instances meet their target "
        f"(optimum or within {WITHIN:.2%}, <= 10 s)."
    )


if __name__ == "__main__":
    main()
