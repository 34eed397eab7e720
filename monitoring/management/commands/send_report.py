"""manage.py send_report [--report executive] [--user NAME]: send the executive report now.

The same service as the schedule and the reviewer pages' "Send now" button
(``monitoring.reports.report_send``): it goes to the report's governed recipients and is
archived. ``--user`` names the admin sending it (recorded in the archive); without it the
archive records the command itself. Exit status 0 sent, 1 not sent (no active recipients,
unknown or not an admin user, or the mail server refused: the failure is archived).
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from governance.exceptions import DomainError
from monitoring.models import ReportStatus, ReportTrigger
from monitoring.report_recipients import DEFAULT_REPORT
from monitoring.reports import report_send


class Command(BaseCommand):
    help = "Send an executive report now to its governed recipients, and archive it."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--report", default=DEFAULT_REPORT, help="the report_recipients item (executive)"
        )
        parser.add_argument("--user", help="the admin sending it (recorded in the archive)")

    def handle(self, *args: Any, **options: Any) -> None:
        actor = None
        if options["user"]:
            actor = get_user_model().objects.filter(username=options["user"]).first()
            if actor is None:
                raise CommandError(f"There is no user called {options['user']!r}.")
        try:
            archived = report_send(
                actor=actor, report=options["report"], trigger=ReportTrigger.COMMAND
            )
        except DomainError as exc:
            raise CommandError(exc.message) from None
        assert archived is not None  # only scheduled sends are skipped
        if archived.status != ReportStatus.SENT:
            raise CommandError(f"Report {archived.pk} was not sent: {archived.error}")
        self.stdout.write(
            f"Report {archived.pk} sent to {len(archived.recipients)} recipients: "
            f"{archived.subject}"
        )
