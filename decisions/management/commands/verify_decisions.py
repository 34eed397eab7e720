"""manage.py verify_decisions: recompute every decision hash, block digest and block link.

Exits 0 when intact; otherwise names the first bad block or decision, e-mails the
administrators and auditors (as the daily check does) and exits 1. The result is kept
(``LogVerification``), as the daily check's is, for the decision pages.
"""

from __future__ import annotations

import re
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from decisions.decision_log import decision_log_verify_record
from decisions.models import DecisionBlock, LogVerification
from decisions.tasks import decision_log_tamper_email


class Command(BaseCommand):
    help = "Verify the tamper-evident decision log."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--head",
            help="a head hash recorded earlier outside the database (a ticket, the executive "
            "report's e-mail): the log must still hold that block, or it was cut back",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        head = (options["head"] or "").strip().lower()
        if options["head"] is not None and not re.fullmatch(r"[0-9a-f]{64}", head):
            raise CommandError("--head takes a head hash: 64 hexadecimal digits.")
        report = decision_log_verify_record(source=LogVerification.Source.COMMAND)
        purged = (
            f" ({report.purged_blocks} emptied by retention purges: "
            f"{report.purged_rows} decisions removed)"
            if report.purged_blocks
            else ""
        )
        found_head = (
            f"head {report.head_hash}"
            if report.head_hash
            else "and the log's head could not be established: record no head from this check"
        )
        summary = (
            f"{report.blocks} blocks{purged}, {report.rows} sealed decisions, "
            f"{report.unsealed} not yet sealed, {found_head}"
        )
        if report.ok and head:
            block = DecisionBlock.objects.filter(hash=head).values_list("number", flat=True)
            if not block:
                self.stderr.write(
                    f"TAMPERED: the head {head} recorded earlier is not in the log: the log "
                    "was cut back, or replaced, since it was recorded. What is there is "
                    f"intact: {summary}."
                )
                raise SystemExit(1)
            summary += (
                f"; the head recorded earlier is block {block[0]} of {report.blocks}, so the "
                "log still holds everything it held then"
            )
        if report.ok:
            self.stdout.write(self.style.SUCCESS(f"Decision log intact: {summary}."))
            return
        written = decision_log_tamper_email(report)
        if written:
            self.stderr.write(f"E-mailed to {written} administrator(s) and auditor(s).")
        if report.first_bad_row:
            self.stderr.write(f"First bad decision: {report.first_bad_row}")
        if report.first_bad_block is not None:
            self.stderr.write(f"First bad block: {report.first_bad_block}")
        for problem in report.problems:
            self.stderr.write(f"TAMPERED: {problem}")
        self.stderr.write(f"Checked: {summary}.")
        raise SystemExit(1)
