"""manage.py seal_decisions: seal the decision log now (beat does it every few seconds)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from decisions.decision_log import decision_blocks_seal


class Command(BaseCommand):
    help = "Seal unsealed decisions into hash-linked blocks."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--grace", type=float, default=None, help="seconds to leave the newest rows alone"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        blocks = decision_blocks_seal(grace_seconds=options["grace"])
        rows = sum(b.row_count for b in blocks)
        self.stdout.write(f"Sealed {rows} decisions in {len(blocks)} block(s).")
