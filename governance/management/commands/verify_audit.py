"""manage.py verify_audit: recompute the audit chain and every sealed version.

Exits 0 when intact; otherwise prints each problem, naming the first bad event, and exits 1.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from governance.audit import audit_chain_verify


class Command(BaseCommand):
    help = "Verify the governance audit chain, sealed version content and model artifacts."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--skip-artifacts", action="store_true", help="do not re-hash artifact files"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        report = audit_chain_verify(artifacts=not options["skip_artifacts"])
        summary = (
            f"{report.events} events, head #{report.head_seq} {report.head_hash}, "
            f"{report.versions_checked} sealed versions"
        )
        if report.ok:
            self.stdout.write(self.style.SUCCESS(f"Audit chain intact: {summary}."))
            return
        if report.first_bad_event is not None:
            self.stderr.write(f"First bad event: #{report.first_bad_event}")
        for problem in report.problems:
            self.stderr.write(f"TAMPERED: {problem}")
        self.stderr.write(f"Checked: {summary}.")
        raise SystemExit(1)
