"""The decision log's daily check on PostgreSQL: every row re-hashed, against the rolling
check (``DECISION_LOG_VERIFY_DAYS``) and the links alone, side by side in one run.

    .venv/bin/python benchmarks/log_verification.py [--customers 100000] [--days 7]

Creates a fresh PostgreSQL database, loads the demo and logs ``--customers`` decisions
with one optimisation run (the onboarding deployment's simulated customers; the run's
limits sized for the population as ``optimisation_run.py`` does),
seals them into blocks of ``DECISION_BLOCK_ROWS``, then times, twice each and
alternating:

1. the full check (``verify_decisions``, *Verify now*): every row re-hashed;
2. the rolling daily check with ``--days`` N, on a log whose last check saw every block
   (the steady state: a day's new blocks are few), so one N-th of the blocks is re-hashed;
3. the links alone: every block's header, link and the last check's recorded hash, with
   no row re-hashed (the floor of any daily check).

Prints each time, microseconds per decision and the ratios to the full check.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.decision_latency import drop_database, fresh_database  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--postgres", default="postgres://postgres@127.0.0.1:5432")
    args = parser.parse_args()

    name = f"arbiter_logbench_{os.getpid()}"
    database_url = fresh_database(args.postgres, name)
    artifacts = tempfile.mkdtemp(prefix="arbiter-logbench-")
    os.environ.update(
        {
            "DATABASE_URL": database_url,
            "ARTIFACT_ROOT": artifacts,
            "DJANGO_SETTINGS_MODULE": "arbiter.settings.local",
            "DEBUG": "true",
            "OMP_NUM_THREADS": "1",
        }
    )
    os.environ.pop("CELERY_BROKER_URL", None)
    os.environ.pop("CELERY_RESULT_BACKEND", None)
    try:
        run(args)
    finally:
        from django.db import connections

        connections.close_all()
        drop_database(args.postgres, name)
        shutil.rmtree(artifacts, ignore_errors=True)


def run(args: argparse.Namespace) -> None:
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    from decisions import runtime
    from decisions.decision_log import (
        decision_blocks_seal,
        decision_log_rolling,
        decision_log_verify_record,
    )
    from decisions.demo_setup import demo_load
    from decisions.models import Decision, DecisionBlock
    from decisions.optimisation import optimisation_run_create, optimisation_run_execute
    from decisions.simulator.use_cases import use_case
    from governance import services

    call_command("migrate", interactive=False, verbosity=0)
    demo_load()
    users = get_user_model().objects
    maker, checker = users.get(username="maker"), users.get(username="checker")
    # The demo's limits are sized for 5,000 customers: limits sized for this population.
    active = runtime.active_deployment("onboarding")
    strategy = active.content["strategy"]
    limits_item = active.content["constraint_set"]["name"]
    content = use_case("onboarding").constraints(strategy["name"], customers=args.customers)
    limits = services.version_create(
        actor=maker, kind="constraint_set", name=limits_item, content=content
    )
    services.version_submit(actor=maker, version=limits)
    services.version_approve(actor=checker, version=limits, comment="Reviewed.")
    started = time.perf_counter()
    created = optimisation_run_create(
        actor=maker,
        strategy=strategy,
        constraint_set={"name": limits_item, "version": limits.number},
        simulated={"customers": args.customers, "seed": 7},
        enqueue=False,
    )
    ran = optimisation_run_execute(created.pk)
    if ran.status != "succeeded":
        raise SystemExit(f"the run did not succeed: {ran.error}")
    decision_blocks_seal(grace_seconds=0)
    rows = Decision.objects.count()
    blocks = DecisionBlock.objects.count()
    print(
        f"logged and sealed {rows:,} decisions in {blocks:,} blocks "
        f"({time.perf_counter() - started:.1f} s)",
        flush=True,
    )

    def timed(label: str, rehash) -> float:
        began = time.perf_counter()
        record = decision_log_verify_record(source="command", rehash=rehash)
        seconds = time.perf_counter() - began
        if not record.ok:
            raise SystemExit(f"{label}: the log did not verify: {record.problems}")
        print(
            f"  {label:<26} {seconds:7.2f} s  {1e6 * seconds / rows:7.1f} us/decision  "
            f"re-hashed {record.rows:,}, links only {record.skipped_rows:,}",
            flush=True,
        )
        return seconds

    results: dict[str, list[float]] = {"full": [], "rolling": [], "links": []}
    for attempt in (1, 2):
        print(f"round {attempt}:", flush=True)
        results["full"].append(timed("full (every row)", None))
        rolling = decision_log_rolling(args.days, today=attempt)
        results["rolling"].append(timed(f"rolling (days={args.days})", rolling))
        results["links"].append(timed("links only", lambda number: False))
    full = min(results["full"])
    print(
        f"\nbest of two: full {full:.2f} s; rolling {min(results['rolling']):.2f} s "
        f"({min(results['rolling']) / full:.3f} of full); links only "
        f"{min(results['links']):.2f} s ({min(results['links']) / full:.3f} of full)",
        flush=True,
    )


if __name__ == "__main__":
    main()
