"""manage.py demo [--no-serve] [--addrport 127.0.0.1:8000]: demo data, then serve."""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.core.management.commands.runserver import naiveip_re

from decisions.decision_log import decision_blocks_seal
from decisions.demo_setup import demo_load, demo_steps_run
from decisions.models import Decision, ReplayCheck
from decisions.replays import replay_check_request


class Command(BaseCommand):
    help = "Load the demo users and governed content, then serve the site (development only)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--no-serve", action="store_true", help="load the data and stop")
        parser.add_argument(
            "--addrport", default="127.0.0.1:8000", help="PORT or ADDRESS:PORT to serve on"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.DEBUG:
            raise CommandError(
                "The demo creates users with a published password; it runs only with DEBUG on."
            )
        # Checked before any data is loaded: runserver would only find out after it.
        serving = None if options["no_serve"] else _served_at(options["addrport"])
        call_command("migrate", interactive=False, verbosity=0)
        report = demo_load()
        self.stdout.write(
            "Demo data " + ("loaded." if report.created_content else "already present.")
        )
        self.stdout.write(f"Users (password for all: {report.password}):")
        for username, roles in report.users.items():
            self.stdout.write(f"  {username:<8} {', '.join(roles)}")
        self.stdout.write(f"Active deployments: {', '.join(report.deployments)}.")
        self.stdout.write(
            "A strategy version (cross-sell v2) submitted by maker awaits review by checker."
        )
        for note in demo_steps_run():
            self.stdout.write(note)
        # No beat here: seal what the demo logged, so the log's blocks can be verified.
        blocks = decision_blocks_seal(grace_seconds=0)
        if blocks:
            rows = sum(b.row_count for b in blocks)
            self.stdout.write(
                f"Decision log: {rows} decisions sealed in {len(blocks)} block(s); "
                "python manage.py verify_decisions checks them."
            )
        self._replay_sample()
        if serving is None:
            return
        self.stdout.write(f"Serving on http://{serving}/  (Ctrl-C to stop)")
        call_command("runserver", options["addrport"], use_reloader=False)

    def _replay_sample(self) -> None:
        """Have the auditor replay a sample of what the demo logged (once), so the
        decision pages show what a replay finds."""
        auditor = get_user_model().objects.filter(username="auditor").first()
        if auditor is None or ReplayCheck.objects.exists() or not Decision.objects.exists():
            return
        check = replay_check_request(actor=auditor, size=100, seed=2026)
        if check.ok:
            verdict = f"all {check.replayed} replayed identically"
        else:
            verdict = f"{check.differs + check.not_replayed} of {check.replayed} did NOT replay"
        self.stdout.write(
            f"Replay: {check.size} decisions drawn at random by auditor, {verdict} (/decisions/"
            f"replays/{check.pk}/; python manage.py replay_decisions does the same)."
        )


def _served_at(addrport: str) -> str:
    """``addrport`` as the ``host:port`` runserver will serve on; ``CommandError`` when it
    is no port from 1 to 65535, optionally after an IP address or host name and a colon."""
    match = re.match(naiveip_re, addrport)
    port = int(match["port"]) if match else 0
    if match is None or not 1 <= port <= 65535:
        raise CommandError(
            f"--addrport {addrport!r} is not a port from 1 to 65535 or an address and such "
            "a port, e.g. 8000 or 127.0.0.1:8000."
        )
    if match["ipv4"] or match["ipv6"]:
        try:
            ipaddress.ip_address(match["ipv4"] or match["ipv6"][1:-1])
        except ValueError:
            raise CommandError(
                f"--addrport {addrport!r} names no valid IP address, e.g. 127.0.0.1:8000."
            ) from None
    return f"{match['addr'] or '127.0.0.1'}:{port}"
