"""manage.py status [--json]: whether every part of the installation is working."""

from __future__ import annotations

import json
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from monitoring.status import EXIT_CODES, FAILING, OK, status_as_dict, status_checks, status_state

MARKS = {OK: "ok", "warning": "WARN", FAILING: "FAIL"}
SUMMARY = {
    OK: "Arbiter is working.",
    "warning": "Arbiter is working, with warnings above.",
    FAILING: "Arbiter is not working: see FAIL above.",
}


class Command(BaseCommand):
    help = (
        "Check the database, task queue, workers, beat, artifact storage, active deployments' "
        "model files, the decision log's last verification, optimisation runs and API keys. "
        "Exit status 0 all ok, 1 a warning, 2 something failing (the monitoring-plugin "
        "convention)."
    )
    requires_system_checks: list[str] = []
    requires_migrations_checks = False

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", action="store_true", help="print the checks as JSON")

    def handle(self, *args: Any, **options: Any) -> None:
        checks = status_checks()
        state = status_state(checks)
        if options["json"]:
            self.stdout.write(json.dumps(status_as_dict(checks), indent=2))
        else:
            width = max(len(c.name) for c in checks)
            for check in checks:
                self.stdout.write(
                    f"{MARKS[check.state]:<4}  {check.name:<{width}}  {check.message}"
                )
            self.stdout.write(SUMMARY[state])
        sys.exit(EXIT_CODES[state])
