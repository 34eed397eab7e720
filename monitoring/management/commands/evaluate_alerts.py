"""manage.py evaluate_alerts [--deployment NAME]: evaluate the alert rules now.

The same service as the hourly beat task (``monitoring.alerts.alerts_evaluate``): new
breaches are stored and e-mailed once; cleared ones are closed. Prints one line per rule.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from governance.exceptions import DomainError
from monitoring.alerts import alerts_evaluate


class Command(BaseCommand):
    help = "Evaluate the active alert rules now; e-mail new breaches once."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--deployment", help="only this deployment's rules")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            evaluation = alerts_evaluate(deployment=options["deployment"])
        except DomainError as exc:
            raise CommandError(exc.message) from None
        for result in evaluation.results:
            self.stdout.write(
                f"{result.deployment}/{result.rule}: {result.state.replace('_', ' ')}: "
                f"{result.message}"
            )
        self.stdout.write(evaluation.summary())
