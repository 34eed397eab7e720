"""manage.py seal_decisions: seal the decision log now (beat does it every few seconds)."""

from __future__ import annotations

import math
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from decisions.decision_log import decision_blocks_seal

# A row younger than the grace may still be committing; a day is far past any run.
GRACE_MOST_SECONDS = 24 * 60 * 60


class Command(BaseCommand):
    help = "Seal unsealed decisions into hash-linked blocks."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--grace",
            type=float,
            default=None,
            help=f"seconds to leave the newest rows alone (0 to {GRACE_MOST_SECONDS})",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        grace = options["grace"]
        if grace is not None and not (math.isfinite(grace) and 0 <= grace <= GRACE_MOST_SECONDS):
            raise CommandError(
                f"--grace is a number of seconds from 0 to {GRACE_MOST_SECONDS} (a day)."
            )
        blocks = decision_blocks_seal(grace_seconds=grace)
        rows = sum(b.row_count for b in blocks)
        self.stdout.write(f"Sealed {rows} decisions in {len(blocks)} block(s).")
