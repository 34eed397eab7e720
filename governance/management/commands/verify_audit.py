"""manage.py verify_audit: recompute the audit chain and every sealed version.

Exits 0 when intact; otherwise prints each problem, naming the first bad event, and exits 1.
"""

from __future__ import annotations

import re
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from governance.audit import audit_chain_verify
from governance.models import AuditEvent


class Command(BaseCommand):
    help = "Verify the governance audit chain, sealed version content and model artifacts."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--skip-artifacts", action="store_true", help="do not re-hash artifact files"
        )
        parser.add_argument(
            "--head",
            help="a head hash recorded earlier outside the database (a ticket, the executive "
            "report's e-mail): the chain must still hold that event, or it was cut back",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        head = (options["head"] or "").strip().lower()
        if options["head"] is not None and not re.fullmatch(r"[0-9a-f]{64}", head):
            raise CommandError("--head takes a head hash: 64 hexadecimal digits.")
        report = audit_chain_verify(artifacts=not options["skip_artifacts"])
        if report.head_hash is None:
            summary = (
                f"{report.events} events verify before the break, "
                f"{report.versions_checked} sealed versions. The chain's head could not be "
                "established: record no head from this check"
            )
        else:
            summary = (
                f"{report.events} events, head #{report.head_seq} {report.head_hash}, "
                f"{report.versions_checked} sealed versions"
            )
        if report.ok and head:
            event = AuditEvent.objects.filter(hash=head).values_list("seq", flat=True)
            if not event:
                self.stderr.write(
                    f"TAMPERED: the head {head} recorded earlier is not in the chain: it was "
                    f"cut back, or replaced, since it was recorded. What is there is intact: "
                    f"{summary}."
                )
                raise SystemExit(1)
            summary += (
                f"; the head recorded earlier is event #{event[0]}, so the chain still holds "
                "everything it held then"
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
