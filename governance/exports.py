"""The audit trail as CSV: every field an event's hash covers, so an examiner can check the
file on their own (docs/registry.md, "Audit trail export")."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from arbiter.csv_export import csv_lines, export_filename
from governance.hashing import canonical_json

# The fields of the event's hash (governance.audit._payload), then the hash itself.
AUDIT_CSV_FIELDS = (
    "seq",
    "created_at",
    "actor_id",
    "actor_username",
    "action",
    "kind",
    "item_name",
    "version_number",
    "old_status",
    "new_status",
    "content_hash",
    "comment",
    "details",
    "prev_hash",
    "hash",
)


def audit_csv_rows(events: Any) -> Iterator[str]:
    """``events`` (a queryset) oldest first, as CSV lines. Empty ``actor_id`` and
    ``version_number`` cells are nulls; ``details`` is the canonical JSON that was hashed;
    ``created_at`` is the ISO 8601 text that was hashed."""

    def rows() -> Iterator[list[Any]]:
        yield list(AUDIT_CSV_FIELDS)
        for event in events.order_by("seq").iterator(chunk_size=2000):
            yield [
                event.seq,
                event.created_at.isoformat(),
                "" if event.actor_id is None else event.actor_id,
                event.actor_username,
                event.action,
                event.kind,
                event.item_name,
                "" if event.version_number is None else event.version_number,
                event.old_status,
                event.new_status,
                event.content_hash,
                event.comment,
                canonical_json(event.details).decode("utf-8"),
                event.prev_hash,
                event.hash,
            ]

    return csv_lines(rows())


def audit_csv_filename(
    *,
    kind: str | None = None,
    item_name: str | None = None,
    actor: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> str:
    """E.g. ``audit-trail-strategy-cross-sell-from-2026-07-01-to-2026-09-30.csv``."""
    return export_filename("audit-trail", (kind, item_name, actor), since=since, until=until)
