"""CSV exports of the decision log: a run's decisions, and any filtered set of decisions.

Both stream (a server-side cursor on PostgreSQL, one row at a time to the client), so an
export of millions of decisions holds a few thousand in memory.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, time, timedelta
from typing import Any

from rest_framework import renderers
from rest_framework.response import Response

from decisions.services import MAX_REASONS


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


def _lines(rows: Iterable[list[Any]]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    for row in rows:
        writer.writerow(row)
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()


RUN_CSV_FIELDS = (
    "decision_id",
    "customer_id",
    "action_id",
    "value",
    "score",
    "reasons",
    "created_at",
)


def run_csv_rows(decisions: Any) -> Iterator[str]:
    """One run's decisions: the columns above, then the action's attributes (one strategy,
    so every action has the same ones)."""

    def rows() -> Iterator[list[Any]]:
        attributes: list[str] | None = None
        for decision in decisions.iterator(chunk_size=2000):
            if attributes is None:
                attributes = sorted(decision.action)
                yield [*RUN_CSV_FIELDS, *attributes]
            chosen = decision.explanation.get("chosen", {})
            yield [
                str(decision.decision_id),
                decision.customer_id,
                decision.action_id,
                repr(decision.value),
                "" if chosen.get("score") is None else repr(chosen["score"]),
                ";".join(r["code"] for r in decision.reasons),
                decision.created_at.isoformat(),
                *[decision.action.get(name, "") for name in attributes],
            ]
        if attributes is None:
            yield list(RUN_CSV_FIELDS)

    return _lines(rows())


LOG_CSV_FIELDS = (
    "decision_id",
    "seq",
    "created_at",
    "customer_id",
    "deployment",
    "deployment_version",
    "strategy_version",
    "constraint_set_version",
    "arm",
    "run",
    "channel",
    "action_id",
    "value",
    *(f"reason_{i}" for i in range(1, MAX_REASONS + 1)),
    "action",
    "features",
    "content_hash",
)
"""Decisions of any deployments: versions as ``name vN``, the principal reasons' codes in
rank order, and the action's attributes and the input features as JSON objects (their
names differ between deployments)."""

_LOG_COLUMNS = (
    "seq",
    "decision_id",
    "created_at",
    "customer_id",
    "deployment_name",
    "versions",
    "arm",
    "run_id",
    "channel",
    "action_id",
    "value",
    "reasons",
    "action",
    "features",
    "content_hash",
)


def log_csv_filename(
    *,
    deployment: str | None = None,
    customer_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> str:
    """A file name that says what an extract holds, e.g.
    ``decisions-onboarding-from-2026-07-01-to-2026-09-30.csv`` (the last day inclusive
    when ``until`` is a midnight, as the decision pages send it)."""
    parts = ["decisions"]
    for name in (deployment, customer_id):
        if name:
            parts.append(re.sub(r"[^A-Za-z0-9._-]+", "_", name)[:60])
    if since:
        parts.append(f"from-{since.astimezone(UTC):%Y-%m-%d}")
    if until:
        last = until.astimezone(UTC)
        if last.time() == time():
            last -= timedelta(days=1)
        parts.append(f"to-{last:%Y-%m-%d}")
    return "-".join(parts) + ".csv"


def _version(versions: dict[str, Any], kind: str) -> str:
    ref = versions.get(kind) or {}
    return f"{ref['name']} v{ref['version']}" if "name" in ref and "version" in ref else ""


def log_csv_rows(decisions: Any) -> Iterator[str]:
    """Every decision of ``decisions`` in log order (seq), with ``LOG_CSV_FIELDS``."""

    def rows() -> Iterator[list[Any]]:
        yield list(LOG_CSV_FIELDS)
        chosen = decisions.order_by("seq").only(*_LOG_COLUMNS)
        for decision in chosen.iterator(chunk_size=2000):
            codes = [r.get("code", "") for r in (decision.reasons or [])][:MAX_REASONS]
            yield [
                str(decision.decision_id),
                decision.seq,
                decision.created_at.isoformat(),
                decision.customer_id,
                decision.deployment_name,
                _version(decision.versions, "deployment"),
                _version(decision.versions, "strategy"),
                _version(decision.versions, "constraint_set"),
                decision.arm,
                decision.run_id or "",
                decision.channel,
                decision.action_id,
                repr(decision.value),
                *codes,
                *[""] * (MAX_REASONS - len(codes)),
                _json(decision.action),
                _json(decision.features),
                decision.content_hash,
            ]

    return _lines(rows())


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
