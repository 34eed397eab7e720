"""manage.py purge_decisions --user ADMIN [--before DATE] [--dry-run]: retention.

Removes the decisions (and their outcomes) of whole sealed blocks sealed before the
retention cutoff (now less ``DECISION_RETENTION_MONTHS``) or an earlier ``--before``.
Nothing is removed automatically; this is the one way. ``--dry-run`` counts only.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError

from arbiter.moments import moment_problem_safe
from decisions.decision_log import decision_purge_latest
from decisions.retention import decision_log_purge, retention_cutoff
from governance.exceptions import DomainError


def _moment(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise CommandError(
            f"--before {text!r} is not a date or time (YYYY-MM-DD or YYYY-MM-DDTHH:MM)."
        ) from None
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    problem = moment_problem_safe(moment)
    if problem:
        raise CommandError(f"--before {text!r} {problem}.")
    return moment.astimezone(UTC)


class Command(BaseCommand):
    help = "Remove decisions past the retention period (whole sealed blocks, oldest first)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--user", required=True, help="an administrator, who is audited")
        parser.add_argument(
            "--before",
            help="purge blocks sealed before this (UTC unless given); default and latest: "
            "the retention cutoff",
        )
        parser.add_argument("--dry-run", action="store_true", help="count, remove nothing")

    def handle(self, *args: Any, **options: Any) -> None:
        user = get_user_model().objects.filter(username=options["user"]).first()
        if user is None:
            raise CommandError(f"There is no user called {options['user']!r}.")
        before = _moment(options["before"]) if options["before"] else None
        try:
            report = decision_log_purge(actor=user, before=before, dry_run=options["dry_run"])
        except DomainError as exc:
            raise CommandError(exc.message) from None
        except DatabaseError as exc:
            # Each batch of blocks is its own transaction: what committed stays purged.
            last = decision_purge_latest()
            done = f"blocks 1-{last.through_block} are purged" if last else "nothing was purged"
            raise CommandError(
                f"The purge stopped: the database refused it ({exc}). So far {done}; "
                "run the command again to go on."
            ) from None
        months = settings.DECISION_RETENTION_MONTHS
        what = (
            f"{report.rows:,} decisions and {report.outcomes:,} outcomes in "
            f"{report.blocks:,} sealed block(s) sealed before {report.before:%Y-%m-%d %H:%M} UTC"
        )
        if report.dry_run:
            self.stdout.write(f"Would purge {what} (retention {months} months).")
        elif report.blocks:
            self.stdout.write(
                self.style.SUCCESS(
                    f"Purged {what}; blocks 1-{report.through_block} now hold no decisions."
                )
            )
        else:
            cutoff = retention_cutoff()
            self.stdout.write(
                f"Nothing to purge: no block after {report.through_block} was sealed before "
                f"{report.before:%Y-%m-%d %H:%M} UTC (retention {months} months, cutoff "
                f"{cutoff:%Y-%m-%d %H:%M} UTC)."
            )
