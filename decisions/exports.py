"""CSV exports of the decision log: a run's decisions, and any filtered set of decisions.

Both stream (a server-side cursor on PostgreSQL, one row at a time to the client), so an
export of millions of decisions holds a few thousand in memory.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from arbiter.csv_export import csv_lines, export_filename
from decisions.services import MAX_REASONS

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

    return csv_lines(rows())


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
    ``decisions-onboarding-from-2026-07-01-to-2026-09-30.csv``."""
    return export_filename("decisions", (deployment, customer_id), since=since, until=until)


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

    return csv_lines(rows())


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
