"""manage.py replay_decisions --user AUDITOR [filters] [--sample N | --all]: replay many.

Draws a random sample (1,000 by default) of the decisions the filters select, replays
each from its logged inputs, versions and prices, and says how many replayed
identically. ``--seed`` draws the same sample again; ``--report FILE`` keeps one CSV row
per decision for the examiner's file; the run is kept as a replay (a ``ReplayCheck``)
the pages and ``manage.py status`` show. Exits 1 when any decision differed or could not
be replayed.
"""

from __future__ import annotations

import csv
import os
import secrets
import sys
from datetime import UTC, datetime, time
from pathlib import Path
from typing import IO, Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from tqdm import tqdm

from arbiter.csv_export import spreadsheet_safe
from arbiter.moments import OUT_OF_RANGE, moment_problem_safe
from decisions.models import OptimisationRun, ReplayCheck
from decisions.replays import (
    DIFFERS,
    IDENTICAL,
    ReplayOutcome,
    ReplaySample,
    replay_check_create,
    replay_check_execute,
)
from governance.exceptions import DomainError

SHOWN = 20  # differing decisions named on the terminal (the report has every one)
REPORT_COLUMNS = (
    "decision_id",
    "seq",
    "created_at",
    "deployment",
    "customer_id",
    "arm",
    "run",
    "action",
    "result",
    "fields",
    "message",
)


def when(text: str) -> datetime:
    """An ISO date (midnight UTC) or date and time (UTC unless it gives an offset)."""
    moment = parse_datetime(text)
    if moment is None:
        day = parse_date(text)
        if day is None:
            raise ValueError(text)
        moment = datetime.combine(day, time())
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    problem = moment_problem_safe(moment)
    if problem:
        raise ValueError(problem)
    return moment


class Command(BaseCommand):
    help = "Replay a random sample (or all) of the logged decisions; exit 1 if any differs."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--user", required=True, help="an auditor, checker or admin")
        parser.add_argument("--deployment", help="only this deployment's decisions")
        parser.add_argument("--customer-id", help="only this customer's decisions")
        parser.add_argument("--run", type=int, help="only this optimisation run's decisions")
        parser.add_argument("--since", help="logged at or after (2026-07-01 or an ISO time)")
        parser.add_argument("--until", help="logged before (2026-10-01 or an ISO time)")
        size = parser.add_mutually_exclusive_group()
        size.add_argument(
            "--sample", type=int, default=1000, metavar="N", help="decisions drawn (1000)"
        )
        size.add_argument("--all", action="store_true", help="replay every decision selected")
        parser.add_argument("--seed", type=int, help="draw the same sample again")
        parser.add_argument("--report", type=Path, help="write one CSV row per decision here")

    def handle(self, *args: Any, **options: Any) -> None:
        user = get_user_model().objects.filter(username=options["user"]).first()
        if user is None:
            raise CommandError(f"There is no user called {options['user']!r}.")
        if not options["all"] and options["sample"] < 1:
            raise CommandError("--sample must be at least 1.")
        times = {}
        for name in ("since", "until"):
            if options[name]:
                try:
                    times[name] = when(options[name])
                except ValueError as exc:
                    if str(exc) == OUT_OF_RANGE:
                        raise CommandError(f"--{name} {options[name]!r} {exc}.") from None
                    raise CommandError(
                        f"--{name} {options[name]!r} is not a date (2026-07-01) or an ISO "
                        "date and time (2026-07-01T09:30:00Z)."
                    ) from None
        if times.get("since") and times.get("until") and times["since"] >= times["until"]:
            raise CommandError("--since must be before --until.")
        run = options["run"]
        if run is not None and not OptimisationRun.objects.filter(pk=run).exists():
            raise CommandError(f"There is no optimisation run {run}.")
        report_path: Path | None = options["report"]
        if report_path is not None and not report_path.parent.is_dir():
            raise CommandError(f"The folder {report_path.parent} does not exist.")
        if report_path is not None and report_path.is_dir():
            raise CommandError(f"{report_path} is a folder: name the report's file in it.")
        # Opened before the replay is created: a report that cannot be written is refused
        # without leaving a replay queued for ever. It becomes report_path once complete.
        scratch = _report_scratch(report_path) if report_path is not None else None
        try:
            check = self._replay_to(scratch, user=user, run=run, times=times, options=options)
            if scratch is not None:
                scratch.close()
                try:
                    os.replace(scratch.name, report_path)
                except OSError as exc:
                    raise CommandError(
                        f"Replay {check.pk} is done but its report could not be saved as "
                        f"{report_path} ({exc.strerror})."
                    ) from None
        finally:
            if scratch is not None:
                scratch.close()
                Path(scratch.name).unlink(missing_ok=True)
        summary = (
            f"{check.replayed:,} replayed: {check.identical:,} identical, "
            f"{check.differs:,} differ, {check.not_replayed:,} could not be replayed "
            f"(kept as replay {check.pk}: /decisions/replays/{check.pk}/)."
        )
        if report_path:
            self.stdout.write(f"One row per decision in {report_path}.")
        if check.ok:
            self.stdout.write(self.style.SUCCESS(summary))
            return
        self.stderr.write(summary)
        for line in self.shown:
            self.stderr.write(line)
        missing = check.replayed - check.identical - len(self.shown)
        if missing > 0:
            where = " (see the report)" if report_path else ""
            self.stderr.write(f"  and {missing:,} more{where}.")
        raise SystemExit(1)

    def _replay_to(
        self,
        report: IO[str] | None,
        *,
        user: Any,
        run: int | None,
        times: dict[str, datetime],
        options: dict[str, Any],
    ) -> ReplayCheck:
        """Create and run the replay, one CSV row per decision to ``report``; the first
        differing decisions are kept in ``self.shown``. A replay that fails is an error."""
        try:
            check = replay_check_create(
                actor=user,
                size=None if options["all"] else options["sample"],
                seed=options["seed"],
                deployment=options["deployment"],
                customer_id=options["customer_id"],
                run=run,
                most=2**31,
                **times,
            )
        except DomainError as exc:
            details = exc.details if isinstance(exc.details, dict) else {}
            named = "".join(
                f" {name}: {'; '.join(map(str, problems))}."
                for name, problems in details.items()
                if isinstance(problems, list)
            )
            raise CommandError(exc.message + named) from None
        self.shown: list[str] = []
        writer = csv.writer(report) if report is not None else None
        if writer:
            writer.writerow(REPORT_COLUMNS)
        with tqdm(unit="decision", file=sys.stderr, leave=False) as bar:

            def each(outcome: ReplayOutcome, sample: ReplaySample) -> None:
                if bar.total is None:  # the first: the sample is drawn
                    self.stdout.write(_drawn(sample))
                    bar.total = sample.size
                bar.update()
                if writer:
                    writer.writerow([spreadsheet_safe(c) for c in _report_row(outcome)])
                if outcome.result != IDENTICAL and len(self.shown) < SHOWN:
                    self.shown.append(_named(outcome))

            try:
                check = replay_check_execute(check.pk, each=each)
            except KeyboardInterrupt:
                ReplayCheck.objects.filter(pk=check.pk).update(
                    status=ReplayCheck.Status.FAILED,
                    finished_at=timezone.now(),
                    error="Stopped on the command line before it finished.",
                )
                raise CommandError(f"Interrupted: replay {check.pk} is kept as stopped.") from None
        if check.status != ReplayCheck.Status.DONE:
            raise CommandError(check.error)
        return check


def _report_scratch(path: Path) -> IO[str]:
    """A new file beside ``path`` to write the report in; refuses a path it cannot write."""
    scratch = path.with_name(f".{path.name}.{secrets.token_hex(4)}.part")
    try:
        return open(scratch, "x", newline="", encoding="utf-8")
    except OSError as exc:
        raise CommandError(f"Cannot write the report {path} ({exc.strerror}).") from None


def _drawn(sample: ReplaySample) -> str:
    drawn = (
        f"all {sample.population:,}"
        if sample.seqs is None
        else f"{sample.size:,} drawn at random (seed {sample.seed}) from {sample.population:,}"
    )
    return f"Replaying {drawn} decisions, up to seq {sample.through_seq}."


def _report_row(outcome: ReplayOutcome) -> list[Any]:
    decision = outcome.decision
    return [
        decision.decision_id,
        decision.seq,
        decision.created_at.isoformat(),
        decision.deployment_name,
        decision.customer_id,
        decision.arm,
        decision.run_id or "",
        decision.action_id,
        outcome.result,
        " ".join(outcome.fields),
        outcome.message,
    ]


def _named(outcome: ReplayOutcome) -> str:
    decision = outcome.decision
    why = (
        f"differs in {', '.join(outcome.fields)}"
        if outcome.result == DIFFERS
        else f"not replayed: {outcome.message}"
    )
    return f"  {decision.decision_id} (seq {decision.seq}) {why}"
