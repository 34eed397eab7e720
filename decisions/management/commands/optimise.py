"""manage.py optimise --deployment NAME --population FILE --user MAKER: run an optimisation.

Runs in this process with a progress bar (``--queue`` hands it to the Celery workers
instead and prints the run's id; without a broker there are none, and ``--queue`` is
refused). Exits 1 with the reason when the run fails.
"""

from __future__ import annotations

import sys
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from celery import current_app
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from decisions.models import RunStatus
from decisions.optimisation import (
    optimisation_run_create,
    optimisation_run_enqueue,
    optimisation_run_execute,
)
from governance.exceptions import DomainError


class Command(BaseCommand):
    help = "Optimise a deployment's decisions for a population and log every decision."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--deployment", required=True, help="the deployment's name")
        source = parser.add_mutually_exclusive_group(required=True)
        source.add_argument("--population", type=Path, help="a CSV or Parquet file")
        source.add_argument(
            "--simulated", type=int, metavar="N", help="N simulated customers of its use case"
        )
        parser.add_argument("--seed", type=int, default=1, help="for --simulated (default 1)")
        parser.add_argument("--user", required=True, help="a maker or admin who runs it")
        parser.add_argument("--time-limit", type=float, help="seconds for the whole run")
        parser.add_argument("--description", default="")
        parser.add_argument("--no-log", action="store_true", help="simulate only: log no decisions")
        parser.add_argument(
            "--queue",
            action="store_true",
            help="hand the run to the Celery workers (needs CELERY_BROKER_URL)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        user = get_user_model().objects.filter(username=options["user"]).first()
        if user is None:
            raise CommandError(f"There is no user called {options['user']!r}.")
        if options["queue"] and current_app.conf.task_always_eager:
            # Without a broker the task would run here, without a progress bar, and a run
            # reported "queued" would already have ended: refuse before creating it.
            raise CommandError(
                "--queue needs a task queue and CELERY_BROKER_URL is not set, so there are "
                "no workers to take the run: leave out --queue to run it here and wait for it."
            )
        path: Path | None = options["population"]
        if path is not None and not path.is_file():
            raise CommandError(f"The population file {path} does not exist.")
        try:
            with open(path, "rb") if path is not None else nullcontext() as handle:
                run = optimisation_run_create(
                    actor=user,
                    deployment=options["deployment"],
                    population_file=handle,
                    population_filename=path.name if path is not None else "",
                    simulated=(
                        {"customers": options["simulated"], "seed": options["seed"]}
                        if options["simulated"] is not None
                        else None
                    ),
                    description=options["description"],
                    time_limit_seconds=options["time_limit"],
                    log_decisions=not options["no_log"],
                    enqueue=False,
                )
        except DomainError as exc:
            raise CommandError(_sentence(exc)) from None
        if options["queue"]:
            try:
                optimisation_run_enqueue(run.pk)
            except DomainError as exc:
                raise CommandError(_sentence(exc)) from None
            self.stdout.write(f"Optimisation run {run.pk} queued.")
            return
        bar = tqdm(total=100, unit="%", file=sys.stderr, bar_format="{desc} {bar} {n:.0f}%")

        def progress(phase: str, percent: float) -> None:
            bar.set_description_str(f"run {run.pk} {phase or 'done':<9}")
            bar.update(percent - bar.n)

        try:
            run = optimisation_run_execute(run.pk, progress=progress)
        finally:
            bar.close()
        if run.status != RunStatus.SUCCEEDED:
            details = "".join(f"\n  {k}: {v}" for k, v in (run.error_details or {}).items())
            raise CommandError(f"Optimisation run {run.pk} {run.status}: {run.error}{details}")
        self.stdout.write(
            self.style.SUCCESS(
                f"Optimisation run {run.pk} succeeded: {run.customers:,} customers, "
                f"objective {run.objective:,.2f}, certified gap {run.gap:.2e} "
                f"({run.solver_status}); {run.decisions_logged:,} decisions logged."
            )
        )
        execution = run.execution or {}
        if execution.get("chunks"):
            where = (
                f"by {', '.join(execution['workers'])}"
                if execution["mode"] == "workers"
                else "in this process"
            )
            resent = execution.get("resent") or 0
            again = (
                f"; {resent} chunk task{'s' if resent != 1 else ''} sent again after losing "
                f"{'its' if resent == 1 else 'their'} worker"
                if resent
                else ""
            )
            self.stdout.write(
                f"Computed in {execution['chunks']} chunks {where}: "
                f"{execution['price_iterations']} price iterations{again}."
            )
        for limit in run.limits:
            self.stdout.write(
                f"  {limit['name']:<24} {limit['sense']} {limit['bound']:>14,.2f}  "
                f"used {limit['used']:>14,.2f}  price {limit['price']:.4g}"
            )


def _sentence(exc: DomainError) -> str:
    return exc.message + "".join(f"\n  {field}: {text}" for field, text in exc.field_problems())
