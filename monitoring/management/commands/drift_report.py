"""manage.py drift_report [--model NAME [--version N]] [--since T] [--until T]: drift now.

Makes the drift report of each watched model version (or the one named) over a window,
by the same service as the daily task (``monitoring.drift.drift_report_run``). The window
defaults to the last complete UTC day; ``--since`` alone means one day from it, ``--until``
alone one day up to it. A date is midnight UTC; a date-time needs its time zone. A report
already stored for the version and window is shown, not recomputed. Exit status 0, or 1
with a sentence saying what was wrong.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from arbiter.moments import moment_problem_safe
from governance.exceptions import DomainError
from monitoring.drift import (
    WINDOW,
    drift_model_version_get,
    drift_model_versions,
    drift_report_run,
    drift_window_default,
)
from monitoring.models import DriftReport


def _instant(text: str, option: str) -> datetime:
    try:
        if len(text) == 10:
            value = datetime.combine(date.fromisoformat(text), datetime.min.time(), tzinfo=UTC)
            problem = moment_problem_safe(value)
            if problem:
                raise CommandError(f"{option}: {text!r} {problem}.")
            return value
        value = datetime.fromisoformat(text)
    except ValueError:
        raise CommandError(f"{option}: {text!r} is not a date (YYYY-MM-DD) or date-time.") from None
    if value.tzinfo is None:
        raise CommandError(f"{option}: give the time zone (e.g. {text}+00:00).")
    problem = moment_problem_safe(value)
    if problem:
        raise CommandError(f"{option}: {text!r} {problem}.")
    return value


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


class Command(BaseCommand):
    help = "Make the drift report of model versions over a window (default: yesterday, UTC)."

    def add_base_argument(self, parser: CommandParser, *args: Any, **kwargs: Any) -> None:
        # ``--version`` is the model version here, not Django's version.
        if "--version" not in args:
            super().add_base_argument(parser, *args, **kwargs)

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--model", help="model name (default: every watched model version)")
        parser.add_argument(
            "--version", type=int, help="model version number (default: the active one)"
        )
        parser.add_argument("--since", help="window start: YYYY-MM-DD (UTC) or ISO date-time")
        parser.add_argument("--until", help="window end, exclusive (same forms)")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["version"] is not None and not options["model"]:
            raise CommandError("--version needs --model.")
        since = _instant(options["since"], "--since") if options["since"] else None
        until = _instant(options["until"], "--until") if options["until"] else None
        if since is None and until is None:
            window = drift_window_default()
            since, until = window.since, window.until
        elif until is None:
            until = since + WINDOW
        elif since is None:
            since = until - WINDOW
        try:
            if options["model"]:
                versions = [
                    drift_model_version_get(name=options["model"], number=options["version"])
                ]
            else:
                versions = drift_model_versions()
            if not versions:
                self.stdout.write("No model version is active or used by an active deployment.")
                return
            for version in versions:
                known = DriftReport.objects.filter(
                    model_version=version,
                    window_start=since.astimezone(UTC),
                    window_end=until.astimezone(UTC),
                ).exists()
                report = drift_report_run(model_version=version, since=since, until=until)
                self.stdout.write(self._line(report, known))
        except DomainError as exc:
            raise CommandError(exc.message) from None

    def _line(self, report: DriftReport, known: bool) -> str:
        version = report.model_version
        head = (
            f"{version.item.name} v{version.number} "
            f"{report.window_start:%Y-%m-%d %H:%M}..{report.window_end:%Y-%m-%d %H:%M} UTC: "
            f"{report.status}"
        )
        if report.status == "no_data":
            body = " (no decisions in the window)"
        else:
            rows = f"{report.current_rows:,} rows"
            if report.sampled:
                rows += f", sampled from {report.decisions_in_window:,}"
            body = (
                f" (share of features drifted {report.share_drifted:.0%}, "
                f"PSI of the score {_number(report.psi_score)}, "
                f"largest PSI {_number(report.psi_max)}; {rows})"
            )
        tail = f": report {report.pk}" + (" (already made)" if known else "")
        return head + body + tail
