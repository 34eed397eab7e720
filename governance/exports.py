"""The audit trail as CSV: every field an event's hash covers, so an examiner can check the
file on their own (docs/registry.md, "Audit trail export")."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from arbiter.csv_export import csv_lines, export_filename
from governance.audit import EVENT_HASH_FIELDS
from governance.hashing import canonical_json

# Every field the event's hash covers, then the hash.
AUDIT_CSV_FIELDS = (*EVENT_HASH_FIELDS, "hash")


def audit_csv_rows(events: Any) -> Iterator[str]:
    """``events`` (a queryset) oldest first, as CSV lines. Empty ``actor_id`` and
    ``version_number`` cells are nulls; ``details`` is the canonical JSON that was hashed;
    ``created_at`` is the ISO 8601 text that was hashed."""

    def rows() -> Iterator[list[Any]]:
        yield list(AUDIT_CSV_FIELDS)
        for event in events.order_by("seq").iterator(chunk_size=2000):
            cells = {name: getattr(event, name) for name in AUDIT_CSV_FIELDS}
            cells["created_at"] = event.created_at.isoformat()
            cells["details"] = canonical_json(event.details).decode("utf-8")
            yield ["" if value is None else value for value in cells.values()]

    return csv_lines(rows())


def audit_csv_filename(
    *,
    kind: str | None = None,
    item_name: str | None = None,
    actor: str | None = None,
    action: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> str:
    """E.g. ``audit-trail-strategy-cross-sell-from-2026-07-01-to-2026-09-30.csv``."""
    return export_filename(
        "audit-trail", (kind, item_name, actor, action), since=since, until=until
    )
