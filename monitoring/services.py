"""Writes of monitoring: recording outcomes reported by downstream systems.

``outcome_batch_record`` is the one path from reported events to stored outcomes, used
by the REST API, ``manage.py import_outcomes`` and the demo alike. Each item is checked on
its own and either stored whole or refused with a reason; the items that pass are written
in one transaction together with the batch row, so a batch is never half-written.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Literal

from django.contrib.auth.models import AbstractBaseUser
from django.db import DatabaseError, IntegrityError, transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from arbiter.moments import moment_problem_safe
from decisions.models import Decision
from decisions.selectors import customer_decisions
from decisions.services import decision_visible_to
from governance.exceptions import NotFound, PermissionDenied, ValidationFailed
from governance.roles import Role, require_role
from monitoring.exceptions import OutcomeFileInterrupted, OutcomesUnavailable, TooManyOutcomes
from monitoring.models import BatchSource, Outcome, OutcomeBatch, OutcomeEvent

WRITER_ROLES = frozenset({Role.API_CLIENT, Role.ADMIN})
MAX_BATCH = 10_000
ITEM_FIELDS = ("decision_id", "event", "amount", "occurred_at")
# Clocks of downstream systems drift; an event minutes "in the future" is still real.
FUTURE_TOLERANCE = timedelta(minutes=5)
AMOUNT_REQUIRED = frozenset({OutcomeEvent.PAID})
AMOUNT_ALLOWED = frozenset({OutcomeEvent.PAID, OutcomeEvent.DEFAULTED, OutcomeEvent.ACCEPTED})
# A trillion: every amount below it comes back to the cent on every database, SQLite's
# REAL (15 significant digits) included; 99999999999999.99 came back as 1e14 there, and
# reading it failed every outcome list and KPI report that met the row.
MAX_AMOUNT = Decimal("1e12")
# Rows per IN (...) query: below SQLite's limit on bound variables.
_QUERY_CHUNK = 900
_INSERT_ATTEMPTS = 3

Status = Literal["created", "duplicate", "refused"]


@dataclass(frozen=True)
class ItemResult:
    """What became of one reported item; ``index`` counts from 0 in the batch."""

    index: int
    status: Status
    code: str = ""
    message: str = ""
    details: dict[str, list[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class BatchReport:
    batch_id: uuid.UUID | None
    received: int
    created: int
    duplicates: int
    refused: int
    items: list[ItemResult]


@dataclass(frozen=True)
class _Clean:
    decision_id: uuid.UUID
    event: str
    amount: Decimal | None
    occurred_at: datetime

    @property
    def key(self) -> tuple[uuid.UUID, str, datetime]:
        return (self.decision_id, self.event, self.occurred_at)


def _money(value: Any) -> Decimal | str:
    """An amount as Decimal cents, or the reason it is not one."""
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        return "must be a number"
    try:
        amount = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    except InvalidOperation:
        return "must be a number"
    if not amount.is_finite():
        return "must be a finite number"
    if amount < 0:
        return "must be 0 or more"
    if amount >= MAX_AMOUNT:
        return f"must be less than {MAX_AMOUNT:,.0f}"
    cents = amount.quantize(Decimal("0.01"))
    if isinstance(value, float) and abs(amount - cents) < Decimal("1e-6"):
        return cents  # binary floating point: 12.3 arrives as 12.300000000000001
    if cents != amount:
        return "at most 2 decimal places"
    return cents


def _moment(value: Any) -> datetime | str:
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str):
        try:
            parsed = parse_datetime(value.strip())
        except ValueError:
            parsed = None
        if parsed is None:
            return "must be an ISO 8601 date and time, e.g. 2026-05-01T10:30:00Z"
        moment = parsed
    else:
        return "must be an ISO 8601 date and time, e.g. 2026-05-01T10:30:00Z"
    if timezone.is_naive(moment):
        return "needs a time zone (e.g. 2026-05-01T10:30:00Z)"
    problem = moment_problem_safe(moment)
    if problem:
        return problem
    return moment.astimezone(UTC)


def outcome_item_check(raw: Any, *, now: datetime) -> _Clean | dict[str, list[str]]:
    """One item's fields, normalised, or its field-level problems."""
    if not isinstance(raw, Mapping):
        return {"non_field_errors": ["must be an object with decision_id, event, occurred_at"]}
    problems: dict[str, list[str]] = {}
    for key in sorted(set(raw) - set(ITEM_FIELDS)):
        problems[str(key)] = [f"unknown field (allowed: {', '.join(ITEM_FIELDS)})"]
    for key in ("decision_id", "event", "occurred_at"):
        if raw.get(key) in (None, ""):
            problems[key] = ["this field is required"]
    decision_id = None
    if "decision_id" not in problems:
        try:
            decision_id = uuid.UUID(str(raw["decision_id"]).strip())
        except ValueError:
            problems["decision_id"] = ["must be a decision id (a UUID)"]
    event = raw.get("event")
    if "event" not in problems and event not in OutcomeEvent.values:
        problems["event"] = [f"must be one of {', '.join(OutcomeEvent.values)}"]
    occurred_at = None
    if "occurred_at" not in problems:
        moment = _moment(raw["occurred_at"])
        if isinstance(moment, str):
            problems["occurred_at"] = [moment]
        elif moment > now + FUTURE_TOLERANCE:
            problems["occurred_at"] = ["is in the future"]
        else:
            occurred_at = moment
    amount: Decimal | None = None
    if raw.get("amount") is not None:
        money = _money(raw["amount"])
        if isinstance(money, str):
            problems["amount"] = [money]
        elif "event" not in problems and event not in AMOUNT_ALLOWED:
            problems["amount"] = [f"a {event} event carries no amount"]
        else:
            amount = money
    elif "event" not in problems and event in AMOUNT_REQUIRED:
        problems["amount"] = [f"a {event} event needs the amount"]
    if problems:
        return problems
    assert decision_id is not None and occurred_at is not None
    return _Clean(decision_id, str(event), amount, occurred_at)


def _chunks(values: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def _decisions(ids: set[uuid.UUID]) -> tuple[dict[uuid.UUID, Decision], set[uuid.UUID]]:
    """The decisions with these ids, and the ids of those about real customers
    (``customer_decisions``: not of a run on simulated customers)."""
    found: dict[uuid.UUID, Decision] = {}
    real: set[uuid.UUID] = set()
    for chunk in _chunks(sorted(ids), _QUERY_CHUNK):
        for decision in Decision.objects.filter(decision_id__in=chunk).only(
            "decision_id", "client_id", "created_at"
        ):
            found[decision.decision_id] = decision
        real.update(
            customer_decisions().filter(decision_id__in=chunk).values_list("decision_id", flat=True)
        )
    return found, real


def _stored_keys(ids: set[uuid.UUID]) -> set[tuple[uuid.UUID, str, datetime]]:
    keys = set()
    for chunk in _chunks(sorted(ids), _QUERY_CHUNK):
        rows = Outcome.objects.filter(decision_id__in=chunk).values_list(
            "decision_id", "event", "occurred_at"
        )
        keys.update((d, e, t.astimezone(UTC)) for d, e, t in rows)
    return keys


def _refusal(index: int, code: str, field_name: str, message: str) -> ItemResult:
    return ItemResult(index, "refused", code, f"{field_name}: {message}", {field_name: [message]})


def outcome_batch_record(
    *,
    actor: AbstractBaseUser,
    items: Sequence[Any],
    source: str = BatchSource.API,
    file_name: str = "",
    file_sha256: str = "",
) -> BatchReport:
    """Check and store up to ``MAX_BATCH`` reported outcomes; report on every item.

    An item is refused when a field is malformed (``invalid``), its decision does not
    exist (``unknown_decision``) or was made for another client (``not_your_decision``;
    API clients report on their own decisions only, admins on any), was made by an
    optimisation run on simulated customers (``simulated_decision``: nobody was offered
    anything), or it happened before the decision (``before_decision``). The same
    decision, event and time already stored, or earlier in the batch, is a ``duplicate``
    and ignored. What passes is written with the batch row in one transaction; a
    concurrent writer storing some of the same outcomes makes it re-check and retry (they
    become duplicates). Raises
    ``PermissionDenied`` (role), ``ValidationFailed`` (empty batch), ``TooManyOutcomes``,
    ``OutcomesUnavailable`` (503: the database refused the write; nothing was stored).
    """
    require_role(actor, WRITER_ROLES, action="report outcomes")
    if not items:
        raise ValidationFailed(
            "The batch holds no outcomes.", details={"outcomes": ["give at least one outcome"]}
        )
    if len(items) > MAX_BATCH:
        raise TooManyOutcomes(
            f"A batch holds at most {MAX_BATCH:,} outcomes; this one has {len(items):,}.",
            details={"outcomes": [f"at most {MAX_BATCH} items; split the batch"]},
        )
    now = timezone.now()
    results: dict[int, ItemResult] = {}
    clean: dict[int, _Clean] = {}
    for index, raw in enumerate(items):
        checked = outcome_item_check(raw, now=now)
        if isinstance(checked, _Clean):
            clean[index] = checked
        else:
            first_field, first = next(iter(checked.items()))
            results[index] = ItemResult(
                index, "refused", "invalid", f"{first_field}: {first[0]}", checked
            )

    decisions, real = _decisions({c.decision_id for c in clean.values()})
    candidates: dict[int, _Clean] = {}
    for index, item in clean.items():
        decision = decisions.get(item.decision_id)
        if decision is None:
            results[index] = _refusal(
                index, "unknown_decision", "decision_id", f"there is no decision {item.decision_id}"
            )
        elif not decision_visible_to(actor, decision):
            results[index] = _refusal(
                index,
                "not_your_decision",
                "decision_id",
                "this decision was made for another client",
            )
        elif item.decision_id not in real:
            # Nobody was offered anything: an event on it is a mix-up, and counted it
            # would inflate the outcomes shown beside KPIs that leave such runs out.
            results[index] = _refusal(
                index,
                "simulated_decision",
                "decision_id",
                "this decision is from an optimisation run on simulated customers; "
                "nobody was offered anything",
            )
        elif item.occurred_at < decision.created_at:
            results[index] = _refusal(
                index,
                "before_decision",
                "occurred_at",
                f"is before the decision was made ({decision.created_at.isoformat()})",
            )
        else:
            candidates[index] = item

    for _attempt in range(_INSERT_ATTEMPTS):
        try:
            return _store(actor, items, results, candidates, source, file_name, file_sha256)
        except IntegrityError:
            continue  # a concurrent batch stored some of the same outcomes: re-check
        except DatabaseError:
            break
    raise OutcomesUnavailable(
        "The outcomes could not be stored; nothing of this batch was written. Retry: "
        "outcomes already stored come back as duplicates."
    )


def _store(
    actor: AbstractBaseUser,
    items: Sequence[Any],
    refused: dict[int, ItemResult],
    candidates: dict[int, _Clean],
    source: str,
    file_name: str,
    file_sha256: str,
) -> BatchReport:
    results = dict(refused)
    with transaction.atomic():
        seen = _stored_keys({c.decision_id for c in candidates.values()})
        fresh: dict[int, _Clean] = {}
        for index, item in sorted(candidates.items()):
            if item.key in seen:
                results[index] = ItemResult(
                    index, "duplicate", "duplicate", "already recorded; ignored"
                )
            else:
                seen.add(item.key)
                fresh[index] = item
                results[index] = ItemResult(index, "created")
        counts = {
            status: sum(1 for r in results.values() if r.status == status)
            for status in ("created", "duplicate", "refused")
        }
        now = timezone.now()
        batch = OutcomeBatch.objects.create(
            source=source,
            file_name=file_name[:300],
            file_sha256=file_sha256,
            posted_by=actor,
            created_at=now,
            received=len(items),
            created=counts["created"],
            duplicates=counts["duplicate"],
            refused=counts["refused"],
        )
        Outcome.objects.bulk_create(
            [
                Outcome(
                    decision_id=item.decision_id,
                    event=item.event,
                    amount=item.amount,
                    occurred_at=item.occurred_at,
                    batch=batch,
                    recorded_at=now,
                )
                for item in fresh.values()
            ],
            batch_size=1000,
        )
    return BatchReport(
        batch_id=batch.batch_id,
        received=len(items),
        created=counts["created"],
        duplicates=counts["duplicate"],
        refused=counts["refused"],
        items=[results[i] for i in range(len(items))],
    )


def outcome_record(*, actor: AbstractBaseUser, item: Any) -> BatchReport:
    """Record one outcome; a refusal is raised as the matching domain error.

    ``ValidationFailed`` (400) for malformed fields, a decision of a run on simulated
    customers or an event before the decision,
    ``NotFound`` (404) for an unknown decision, ``PermissionDenied`` (403) for another
    client's decision. A duplicate is not an error: the report says it was ignored.
    """
    report = outcome_batch_record(actor=actor, items=[item])
    result = report.items[0]
    if result.status != "refused":
        return report
    if result.code == "unknown_decision":
        raise NotFound(f"There is no decision {item.get('decision_id')}.")
    if result.code == "not_your_decision":
        raise PermissionDenied("This decision was made for another client.")
    raise ValidationFailed(result.message, details=result.details, code=result.code)


# --- files ----------------------------------------------------------------------------


@dataclass(frozen=True)
class FileReport:
    file_name: str
    rows: int
    created: int
    duplicates: int
    refused: int
    bad_rows: list[tuple[int, str]]
    """(row number as a person counts it in the file, why) for every refused row."""
    ignored_columns: list[str]


def outcome_file_import(
    *,
    actor: AbstractBaseUser,
    path: Path,
    chunk_rows: int = 2_000,
    progress: Callable[[int], None] | None = None,
) -> FileReport:
    """Load a CSV or Parquet file of outcomes through ``outcome_batch_record``.

    The file is read and its columns checked before anything is stored
    (``OutcomeFileUnreadable``); then it is recorded in batches of ``chunk_rows``, each
    all-or-nothing per row as over the API and committed on its own. Re-running a file
    loads nothing twice: its stored rows come back as duplicates. ``progress(rows)`` is
    called after each batch. When the database refuses a batch: ``OutcomesUnavailable``
    if it was the first (nothing of the file is stored), else ``OutcomeFileInterrupted``
    with the report of the batches stored before it.
    """
    from monitoring.outcome_files import outcome_file_read

    require_role(actor, WRITER_ROLES, action="report outcomes")
    table = outcome_file_read(path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    created = duplicates = refused = 0
    bad_rows: list[tuple[int, str]] = []

    def so_far(rows: int) -> FileReport:
        return FileReport(
            file_name=path.name,
            rows=rows,
            created=created,
            duplicates=duplicates,
            refused=refused,
            bad_rows=bad_rows,
            ignored_columns=table.ignored_columns,
        )

    for start in range(0, len(table.items), chunk_rows):
        chunk = table.items[start : start + chunk_rows]
        try:
            report = outcome_batch_record(
                actor=actor,
                items=chunk,
                source=BatchSource.FILE,
                file_name=path.name,
                file_sha256=digest,
            )
        except OutcomesUnavailable:
            if start == 0:
                raise OutcomesUnavailable(
                    f"Nothing of {path.name} was stored: the database refused the write. "
                    "Re-run the same file when it accepts writes again."
                ) from None
            stopped = table.row_numbers[start]
            raise OutcomeFileInterrupted(
                f"The database refused the write at row {stopped} of {path.name}. The "
                f"{start:,} rows before it are done ({created:,} loaded, {duplicates:,} "
                f"already loaded, {refused:,} refused); the {len(table.items) - start:,} "
                f"from row {stopped} on were not stored. Re-run the same file to load "
                "them: rows already loaded come back as duplicates, none is loaded twice.",
                report=so_far(start),
            ) from None
        created += report.created
        duplicates += report.duplicates
        refused += report.refused
        for result in report.items:
            if result.status == "refused":
                bad_rows.append((table.row_numbers[start + result.index], result.message))
        if progress is not None:
            progress(len(chunk))
    return so_far(len(table.items))
