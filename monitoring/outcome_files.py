"""Reading outcome files (CSV or Parquet) into the items ``outcome_batch_record`` takes.

Columns: ``decision_id``, ``event``, ``occurred_at`` (ISO 8601 with a time zone, or a
time-zone-aware Parquet timestamp) and optionally ``amount``; other columns are ignored
and named in the report. Values are handed on as they are (text stays text) so that the
same field checks as the API's name whatever is wrong with a row.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import pandas as pd

from arbiter.tables import TableUnreadable, csv_row_lines, table_columns, table_pieces
from monitoring.exceptions import OutcomeFileUnreadable

REQUIRED_COLUMNS = ("decision_id", "event", "occurred_at")
OPTIONAL_COLUMNS = ("amount",)
SUFFIXES = {".csv": "CSV", ".parquet": "Parquet", ".pq": "Parquet"}


@dataclass(frozen=True)
class OutcomeTable:
    items: list[dict[str, Any]]
    row_numbers: list[int]
    """For each item, its row as a person counts it: the CSV line (the header is line 1),
    or the Parquet row counted from 1."""
    ignored_columns: list[str]


def _read(path: Path) -> tuple[pd.DataFrame, str, list[str]]:
    """The file's rows (of a Parquet file, only the columns used), its kind, and every
    column its header names."""
    kind = SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise OutcomeFileUnreadable(
            f"{path.name} is neither a CSV nor a Parquet file (name it .csv or .parquet).",
            details={"file": ["use a .csv or .parquet file"]},
        )
    if not path.is_file():
        raise OutcomeFileUnreadable(f"There is no file {path}.", details={"file": ["not found"]})
    try:
        named = table_columns(path, kind.lower())
        used = (*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS)
        frame = next(table_pieces(path, kind.lower(), columns=used))
    except TableUnreadable as exc:
        raise OutcomeFileUnreadable(
            f"{path.name} {exc.predicate}", details={"file": [exc.detail]}
        ) from None
    return frame, kind, named


def _cell(value: Any) -> Any:
    """A cell as the row checks expect it: None for blanks and nulls, numbers from text."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if value is pd.NaT:
        return None
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    if hasattr(value, "item") and not isinstance(value, str):
        return value.item()  # numpy scalars
    if isinstance(value, str) and not value.strip():
        return None
    return value


def _amount(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return Decimal(value.strip())
        except InvalidOperation:
            return value  # the row check names it
    return value


def outcome_file_read(path: Path) -> OutcomeTable:
    """The rows of ``path`` as outcome items. Raises ``OutcomeFileUnreadable`` when the file
    cannot be read or lacks a required column."""
    frame, kind, columns = _read(path)
    frame.columns = [str(c).strip() for c in frame.columns]
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        raise OutcomeFileUnreadable(
            f"{path.name} lacks the column{'s' if len(missing) > 1 else ''} "
            f"{', '.join(missing)} (needed: {', '.join(REQUIRED_COLUMNS)}; optional: amount).",
            details={"columns": [f"missing: {', '.join(missing)}"]},
        )
    wanted = [c for c in (*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS) if c in columns]
    ignored = [c for c in columns if c not in wanted]
    items = []
    for record in frame[wanted].to_dict("records"):
        item = {key: _cell(value) for key, value in record.items()}
        if "amount" in item:
            item["amount"] = _amount(item["amount"])
        items.append(item)
    if kind == "Parquet":
        return OutcomeTable(items, list(range(1, len(items) + 1)), ignored)
    # A blank line or a quoted value spanning lines: a row is not always one line on.
    try:
        lines = csv_row_lines(path)
    except TableUnreadable as exc:
        raise OutcomeFileUnreadable(
            f"{path.name} {exc.predicate}", details={"file": [exc.detail]}
        ) from None
    if len(lines) != len(items):
        # Two readers of one file disagreeing: refused rather than rows misnamed.
        raise OutcomeFileUnreadable(
            f"{path.name} could not be numbered by line ({len(items)} rows read, "
            f"{len(lines)} found line by line); nothing was loaded.",
            details={"file": ["rows could not be numbered by line"]},
        )
    return OutcomeTable(items, lines, ignored)
