"""End to end: one optimisation run on PostgreSQL, from population to logged decisions.

    .venv/bin/python benchmarks/optimisation_run.py [--customers 200000] [--use-case onboarding]

Creates a fresh PostgreSQL database, loads the demo, registers and approves a constraint
set sized for the population (the demo's is sized for 5,000 customers), then runs the
optimisation in this process exactly as the Celery task does: load and check a simulated
population, score every customer on every action, solve, explain every decision with
SHAP reasons and COPY it into the decision log. Prints the time of each phase and the
decisions per second end to end. Target (issue 4): >= 20,000 decisions per second for
200,000 customers.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=200_000)
    parser.add_argument("--use-case", default="onboarding")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--postgres", default="postgres://postgres@127.0.0.1:5432")
    args = parser.parse_args()

    import psycopg

    name = f"arbiter_runbench_{os.getpid()}"
    with psycopg.connect(f"{args.postgres}/postgres", autocommit=True) as connection:
        connection.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        connection.execute(f"CREATE DATABASE {name}")
    artifacts = tempfile.mkdtemp(prefix="arbiter-runbench-")
    os.environ.update(
        {
            "DATABASE_URL": f"{args.postgres}/{name}",
            "ARTIFACT_ROOT": artifacts,
            "DJANGO_SETTINGS_MODULE": "arbiter.settings.local",
            "DEBUG": "true",
            "OMP_NUM_THREADS": "1",
        }
    )
    os.environ.pop("CELERY_BROKER_URL", None)
    try:
        run_benchmark(args)
    finally:
        from django.db import connections

        connections.close_all()
        with psycopg.connect(f"{args.postgres}/postgres", autocommit=True) as connection:
            connection.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def run_benchmark(args: argparse.Namespace) -> None:
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    from decisions import runtime
    from decisions.demo_setup import demo_load
    from decisions.models import Decision
    from decisions.optimisation import optimisation_run_create, optimisation_run_execute
    from decisions.simulator.use_cases import use_case
    from governance import services

    call_command("migrate", interactive=False, verbosity=0)
    demo_load()
    users = get_user_model().objects
    maker, checker = users.get(username="maker"), users.get(username="checker")
    deployment = args.use_case
    active = runtime.active_deployment(deployment)
    strategy = active.content["strategy"]
    limits_item = active.content["constraint_set"]["name"]
    content = use_case(args.use_case).constraints(strategy["name"], customers=args.customers)
    limits = services.version_create(
        actor=maker, kind="constraint_set", name=limits_item, content=content
    )
    services.version_submit(actor=maker, version=limits)
    services.version_approve(actor=checker, version=limits, comment="Reviewed.")

    phases: dict[str, float] = {}
    last = {"phase": "", "at": time.perf_counter()}

    def progress(phase: str, percent: float) -> None:
        if phase != last["phase"]:
            now = time.perf_counter()
            print(f"  {now - last['at']:7.2f} s  {last['phase'] or 'start'} done", flush=True)
            last.update(phase=phase, at=now)

    started = time.perf_counter()
    run = optimisation_run_create(
        actor=maker,
        strategy=strategy,
        constraint_set={"name": limits_item, "version": limits.number},
        simulated={"customers": args.customers, "seed": args.seed},
        enqueue=False,
    )
    run = optimisation_run_execute(run.pk, progress=progress)
    elapsed = time.perf_counter() - started
    if run.status != "succeeded":
        raise SystemExit(f"run {run.pk} {run.status}: {run.error}")
    logged = Decision.objects.filter(run=run).count()
    phases = run.phase_seconds
    print(
        f"\n{args.use_case}: {run.customers:,} customers x {len(run.kpis['per_action'])} "
        f"actions x {len(run.limits)} limits on PostgreSQL"
    )
    print(
        f"solver: {run.solver_status}, certified gap {run.gap:.2e}, "
        f"price agreement {run.kpis['price_agreement']:.4f}"
    )
    print("phase seconds: " + ", ".join(f"{k} {v:.2f}" for k, v in phases.items()))
    print(f"decisions logged: {logged:,} (run says {run.decisions_logged:,})")
    print(
        f"end to end: {elapsed:.2f} s = {logged / elapsed:,.0f} decisions/s "
        f"(target >= 20,000/s: {'MET' if logged / elapsed >= 20_000 else 'MISSED'})"
    )
    if phases.get("logging"):
        print(
            f"logging phase alone (reasons, hashing, COPY): "
            f"{logged / phases['logging']:,.0f} decisions/s"
        )


if __name__ == "__main__":
    main()
