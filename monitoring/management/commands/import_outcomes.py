"""manage.py import_outcomes FILE --user NAME: load a CSV or Parquet file of outcomes.

The same path as the REST API (``outcome_batch_record``), in batches; bad rows are named
with the reason, good rows load once (a re-run reports them as duplicates). Exit status:
0 every row loaded or already there; 1 nothing loaded (unknown user, unreadable file,
missing columns, every row refused, the database refused the first batch); 2 some rows
are in and others not: the good rows loaded and some rows were refused, or the database
refused a later batch (a re-run loads the rest).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from governance.exceptions import DomainError
from monitoring.exceptions import OutcomeFileInterrupted
from monitoring.services import FileReport, outcome_file_import

# Bad rows listed in full up to this many; past it, a count (the rest are alike in a file).
SHOWN_BAD_ROWS = 200


class Command(BaseCommand):
    help = "Load outcomes (decision_id, event, occurred_at, amount) from a CSV or Parquet file."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", type=Path, help="a .csv or .parquet file")
        parser.add_argument(
            "--user", required=True, help="the API client (or admin) the outcomes come from"
        )
        parser.add_argument(
            "--no-progress", action="store_true", help="no progress bar (for logs and cron)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        user = get_user_model().objects.filter(username=options["user"]).first()
        if user is None:
            raise CommandError(f"There is no user called {options['user']!r}.")
        path: Path = options["file"]
        bar = tqdm(
            desc=path.name,
            unit="rows",
            disable=options["no_progress"],
            file=sys.stderr,
            leave=False,
        )
        try:
            report = outcome_file_import(actor=user, path=path, progress=bar.update)
        except OutcomeFileInterrupted as exc:
            bar.close()
            done = exc.report
            self._report(done, summary=False)  # the message has the counts
            # Some rows are in, the rest not: 2, as when rows are refused.
            loaded = done.created or done.duplicates
            raise CommandError(exc.message, returncode=2 if loaded else 1) from None
        except DomainError as exc:
            raise CommandError(exc.message) from None
        finally:
            bar.close()
        self._report(report)
        if report.refused and not report.created and not report.duplicates:
            self.stdout.write("Nothing was loaded: every row was refused.")
            raise SystemExit(1)
        if report.refused:
            # Distinct from 1 (nothing loaded): the good rows are in.
            raise SystemExit(2)

    def _report(self, report: FileReport, *, summary: bool = True) -> None:
        if summary:
            self.stdout.write(
                f"{report.file_name}: {report.rows} row{'' if report.rows == 1 else 's'}: "
                f"{report.created} loaded, "
                f"{report.duplicates} already loaded, {report.refused} refused."
            )
        if report.ignored_columns:
            self.stdout.write(f"Ignored columns: {', '.join(report.ignored_columns)}.")
        for row, why in report.bad_rows[:SHOWN_BAD_ROWS]:
            self.stdout.write(f"  row {row}: {why}")
        if len(report.bad_rows) > SHOWN_BAD_ROWS:
            self.stdout.write(f"  ... and {len(report.bad_rows) - SHOWN_BAD_ROWS} more bad rows.")
