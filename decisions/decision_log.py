"""Hashing, sealing and verifying the decision log.

Every row's ``content_hash`` covers everything logged about the decision. Blocks seal
ranges of rows: a block's ``rows_digest`` is the SHA-256 over each row's seq and hash in
order, and its ``hash`` chains to the previous block. Sealing leaves the newest rows
(younger than ``DECISION_SEAL_GRACE_SECONDS``) for the next pass, so a transaction still
committing cannot land inside an already sealed range.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import connection, connections, transaction
from django.db.models import TextField
from django.db.models.functions import Cast
from django.utils import timezone

from arbiter.db import prepared_cursor, prepares_statements
from decisions.models import (
    Decision,
    DecisionBlock,
    DecisionPurge,
    LogJSONField,
    LogVerification,
)
from governance.hashing import GENESIS_HASH, canonical_json, canonical_json_plain, sha256_hex
from governance.models import ChainHead, Version, VersionStatus

CHAIN = "decision-blocks"
HASHED_FIELDS = (
    "decision_id",
    "request_id",
    "idempotency_key",
    "client_id",
    "customer_id",
    "channel",
    "deployment_name",
    "deployment_version_id",
    "strategy_version_id",
    "constraint_set_version_id",
    "versions",
    "arm",
    "features",
    "actions",
    "action_id",
    "action",
    "value",
    "prices",
    "reasons",
    "contributions",
    "explanation",
    "latency_ms",
    "created_at",
)


# PostgreSQL's jsonb keeps numbers as decimals: -0.0 comes back as 0.0, and 1e+16 as the
# integer 10000000000000000. The hash is taken over numbers in a form both sides agree
# on, so a row read back verifies.


_NEGATIVE_ZERO = re.compile(rb"-0\.0[,\]}]")


def _unstable(data: bytes) -> bool:
    """A -0.0 number or an exponent float somewhere in canonical JSON (or, rarely, in a
    string: then the slow path runs and gives the same hash). A literal-prefix pattern
    and a substring test: both scan at memchr speed."""
    return b"e+" in data or _NEGATIVE_ZERO.search(data) is not None


def _jsonb_stable(value: Any) -> Any:
    if isinstance(value, float):
        if value == 0.0:
            return 0.0
        text = repr(value)
        return int(Decimal(text)) if "e+" in text else value
    if isinstance(value, dict):
        return {k: _jsonb_stable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonb_stable(v) for v in value]
    return value


def decision_hash_of_texts(texts: dict[str, bytes]) -> str | None:
    """``decision_hash`` from each hashed field's ``canonical_json`` (``run_id`` included
    when the row has one), or None when a number needs the jsonb-stable form (then call
    ``decision_hash``). Lets a bulk writer serialise each field once for both the hash
    and the row."""
    parts = [b'"%s":%s' % (name.encode(), texts[name]) for name in sorted(texts)]
    data = b"{" + b",".join(parts) + b"}"
    if _unstable(data):
        return None
    return sha256_hex(data)


def _hashed_payload(decision: Any) -> dict[str, Any]:
    """The values a row's ``content_hash`` covers, by name (ids and times as text)."""
    payload: dict[str, Any] = {}
    for name in HASHED_FIELDS:
        value = getattr(decision, name)
        if name == "decision_id":
            value = str(value)
        elif name == "created_at":
            value = value.isoformat()
        payload[name] = value
    run_id = getattr(decision, "run_id", None)
    if run_id is not None:  # real-time rows hash as they always did
        payload["run_id"] = run_id
    return payload


def _payload_hash(payload: dict[str, Any]) -> str:
    data = canonical_json(payload)
    if _unstable(data):  # rare: only then walk the values
        data = canonical_json(_jsonb_stable(payload))
    return sha256_hex(data)


def decision_hash(decision: Decision) -> str:
    return _payload_hash(_hashed_payload(decision))


def decision_texts(decision: Any) -> dict[str, bytes]:
    """Each hashed field's ``canonical_json``, for ``decision_hash_of_texts`` and for the
    row's JSON columns. The values are the decision service's: plain JSON types whose
    floats are finite (features are checked, values and scores go through ``_num``, SHAP
    values that do not add up raise); a top-level float goes through ``canonical_json``,
    which refuses NaN."""
    return {name: canonical_json_plain(v) for name, v in _hashed_payload(decision).items()}


def _as_is(text: bytes) -> bytes:
    return text


class DeploymentChanged(Exception):
    """``decision_write(while_active=True)``: the decision's deployment version is no
    longer active, so nothing was written."""


@dataclass(frozen=True)
class _Insert:
    sql: str
    fields: tuple[Any, ...]


_inserts: dict[tuple[str, bool], _Insert] = {}


def _insert_of(using: str, while_active: bool) -> _Insert:
    found = _inserts.get((using, while_active))
    if found is None:
        qn = connections[using].ops.quote_name
        meta = Decision._meta
        fields = tuple(f for f in meta.concrete_fields if not f.primary_key)
        values = ", ".join(["%s"] * len(fields))
        if while_active:
            # PostgreSQL types an INSERT's SELECT list by the columns it fills.
            version = Version._meta
            status = qn(version.get_field("status").column)
            rows = (
                f"SELECT {values} WHERE EXISTS (SELECT 1 FROM {qn(version.db_table)} "  # noqa: S608
                f"WHERE {qn(version.pk.column)} = %s AND {status} = %s)"
            )
        else:
            rows = f"VALUES ({values})"
        # Only quoted names from the models' metadata go into the text; values are parameters.
        sql = (
            f"INSERT INTO {qn(meta.db_table)} ({', '.join(qn(f.column) for f in fields)}) "
            f"{rows} RETURNING {qn(meta.pk.column)}"
        )
        found = _inserts.setdefault((using, while_active), _Insert(sql, fields))
    return found


def decision_write(
    decision: Decision, *, using: str = "default", while_active: bool = False
) -> None:
    """Hash ``decision`` and INSERT it: one statement, committed by itself when no
    transaction is open (autocommit), so one round trip.

    Each JSON field is serialised once, for the hash and for its column (``json`` on
    PostgreSQL keeps the text as sent), and on PostgreSQL the INSERT runs prepared.
    ``while_active``: only if its ``deployment_version`` is still the active one, checked
    by the INSERT itself on PostgreSQL (so the decision service need not ask first), else
    ``DeploymentChanged`` and nothing written. Raises Django's ``IntegrityError`` (a
    repeated idempotency key) and ``DatabaseError``.
    """
    texts = decision_texts(decision)
    decision.content_hash = decision_hash_of_texts(texts) or decision_hash(decision)
    if not prepares_statements(using):
        if not while_active:
            decision.save(force_insert=True, using=using)
            return
        with transaction.atomic(using=using):
            if not _still_active(decision, using):
                raise DeploymentChanged(decision.deployment_name)
            decision.save(force_insert=True, using=using)
        return
    from psycopg.types.json import Json

    insert = _insert_of(using, while_active)
    connection = connections[using]
    params = []
    for column in insert.fields:
        if isinstance(column, LogJSONField) and column.attname in texts:
            params.append(Json(texts[column.attname], dumps=_as_is))
        else:
            params.append(column.get_db_prep_save(column.pre_save(decision, True), connection))
    if while_active:
        params += [decision.deployment_version_id, VersionStatus.ACTIVE.value]
    with prepared_cursor(using) as cursor:
        cursor.execute(insert.sql, params)
        row = cursor.fetchone()
    if row is None:
        raise DeploymentChanged(decision.deployment_name)
    decision.seq = row[0]
    decision._state.adding = False
    decision._state.db = using


def _still_active(decision: Decision, using: str) -> bool:
    return (
        Version.objects.using(using)
        .filter(pk=decision.deployment_version_id, status=VersionStatus.ACTIVE)
        .exists()
    )


def _block_hash(block: DecisionBlock) -> str:
    return sha256_hex(
        canonical_json(
            {
                "number": block.number,
                "after_seq": block.after_seq,
                "last_seq": block.last_seq,
                "row_count": block.row_count,
                "rows_digest": block.rows_digest,
                "prev_hash": block.prev_hash,
                "sealed_at": block.sealed_at.isoformat(),
            }
        )
    )


def _digest(rows: list[tuple[int, str]]) -> str:
    digest = hashlib.sha256()
    for seq, content_hash in rows:
        digest.update(f"{seq}:{content_hash}\n".encode())
    return digest.hexdigest()


# An optimisation run writes its decisions in one long transaction; their seqs are taken
# when the rows are written, so a sealer must not seal past them before they commit. Runs
# hold this advisory lock shared for the transaction, sealers take it exclusively.
LOG_WRITERS_LOCK = 0x4172626974657231  # "Arbiter1"


def log_writers_wait() -> None:
    """Wait (inside the sealer's transaction) until no optimisation run is writing."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [LOG_WRITERS_LOCK])


def log_writer_enter() -> None:
    """Called inside a run's logging transaction: sealing waits until it ends."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock_shared(%s)", [LOG_WRITERS_LOCK])


def decision_blocks_seal(
    *, max_rows: int | None = None, grace_seconds: float | None = None
) -> list[DecisionBlock]:
    """Seal every unsealed row older than the grace period, ``max_rows`` per block.

    Locks the block chain head, so concurrent sealers take turns and never seal a row
    twice. Safe to run any number of times (a task, beat, the CLI).
    """
    max_rows = max_rows or settings.DECISION_BLOCK_ROWS
    grace = settings.DECISION_SEAL_GRACE_SECONDS if grace_seconds is None else grace_seconds
    sealed: list[DecisionBlock] = []
    with transaction.atomic():
        log_writers_wait()
        head, _ = ChainHead.objects.select_for_update().get_or_create(
            name=CHAIN, defaults={"seq": 0, "hash": GENESIS_HASH}
        )
        last = DecisionBlock.objects.order_by("-number").first()
        after = last.last_seq if last else 0
        cutoff = timezone.now() - timedelta(seconds=grace)
        while True:
            rows = list(
                Decision.objects.filter(seq__gt=after, created_at__lt=cutoff)
                .order_by("seq")
                .values_list("seq", "content_hash")[:max_rows]
            )
            if not rows:
                break
            block = DecisionBlock(
                number=head.seq + 1,
                after_seq=after,
                last_seq=rows[-1][0],
                row_count=len(rows),
                rows_digest=_digest(rows),
                prev_hash=head.hash,
                sealed_at=timezone.now(),
            )
            block.hash = _block_hash(block)
            block.save(force_insert=True)
            head.seq, head.hash = block.number, block.hash
            after = block.last_seq
            sealed.append(block)
        if sealed:
            head.save(update_fields=["seq", "hash"])
    return sealed


def decision_log_backlog() -> tuple[int, timedelta | None]:
    """How many decisions no sealed block covers yet, and the age of the oldest of them."""
    after = DecisionBlock.objects.order_by("-number").values_list("last_seq", flat=True).first()
    pending = Decision.objects.filter(seq__gt=after or 0).order_by()
    oldest = pending.order_by("seq").values_list("created_at", flat=True).first()
    if oldest is None:
        return 0, None
    return pending.count(), max(timezone.now() - oldest, timedelta(0))


@dataclass
class LogReport:
    blocks: int = 0
    rows: int = 0
    purged_blocks: int = 0  # blocks whose rows a retention purge removed (decisions.retention)
    purged_rows: int = 0
    skipped_blocks: int = 0  # blocks whose links were checked but rows not re-hashed (rolling)
    skipped_rows: int = 0
    unsealed: int = 0
    head_hash: str = ""  # the verified head of the block chain; "" when the chain is broken
    first_bad_block: int | None = None
    first_bad_row: str | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _fail(report: LogReport, problem: str, *, block: int | None, row: str | None = None) -> None:
    report.problems.append(problem)
    if report.first_bad_block is None:
        report.first_bad_block = block
    if report.first_bad_row is None and row is not None:
        report.first_bad_row = row


_JSON_COLUMNS = tuple(
    n for n in HASHED_FIELDS if isinstance(Decision._meta.get_field(n), LogJSONField)
)
_SCALARS = tuple(n for n in HASHED_FIELDS if n not in _JSON_COLUMNS)


def _stored_hashes(**seq_range: int) -> Iterator[tuple[int, str, str, str]]:
    """``(seq, decision_id, content_hash, recomputed)`` of the rows in ``seq_range``, in
    order: ``recomputed`` is the hash the row's values give now.

    Rows written by ``decision_write`` and by the runs' COPY hold each field's canonical
    JSON as written (``json`` on PostgreSQL keeps the text), so the hash is first taken
    over that text, without parsing 4-6 KB of JSON a row. Where it does not match (the
    text is not canonical: a server without prepared statements, rows written while the
    columns were ``jsonb``; or the row was altered), and on other databases (Django
    writes their JSON), the text is parsed and the hash taken from the values, exactly
    as ``decision_hash`` does.
    """
    texts = {f"{name}_text": Cast(name, TextField()) for name in _JSON_COLUMNS}
    rows = (
        Decision.objects.filter(**seq_range)
        .order_by("seq")
        .annotate(**texts)
        .values_list("seq", "content_hash", "run_id", *_SCALARS, *texts)
    )
    width = len(_SCALARS)
    # Django writes JSON with its own spacing where the log does not pass its text.
    as_written = connection.vendor == "postgresql"
    for row in rows.iterator(chunk_size=1000):
        seq, content_hash, run_id = row[0], row[1], row[2]
        payload = dict(zip(_SCALARS, row[3 : 3 + width], strict=True))
        payload["decision_id"] = decision_id = str(payload["decision_id"])
        payload["created_at"] = payload["created_at"].isoformat()
        stored = dict(zip(_JSON_COLUMNS, row[3 + width :], strict=True))
        if run_id is not None:  # real-time rows hash as they always did
            payload["run_id"] = run_id
        recomputed = None
        if as_written:
            parts = {name: canonical_json_plain(value) for name, value in payload.items()}
            parts.update((name, text.encode()) for name, text in stored.items())
            recomputed = decision_hash_of_texts(parts)
        if recomputed != content_hash:
            payload.update((name, json.loads(text)) for name, text in stored.items())
            recomputed = _payload_hash(payload)
        yield seq, decision_id, content_hash, recomputed


def decision_log_verify(*, rehash: Callable[[int], bool] | None = None) -> LogReport:
    """Recompute every row hash, every block digest and the block chain.

    ``rehash(block number)`` limits which blocks' rows are re-hashed (the daily check's
    rolling mode, ``decision_log_rolling``); every block's header and link is checked
    whatever it says. Also checks that the block the last intact verification ended at
    still has the hash it recorded (``LogVerification``), so blocks rewritten since then
    are found whichever rows are re-hashed.

    Blocks a retention purge emptied (``DecisionPurge``) are still checked as links of the
    chain; their rows must be gone, all of them. The check reads one snapshot of the log
    (on PostgreSQL a REPEATABLE READ, READ ONLY transaction): beat seals every few
    seconds and a large log takes minutes to check, so a block sealed, or blocks purged,
    after it began would otherwise read as blocks cut from the end or rows removed.
    """
    if connection.in_atomic_block:  # the caller's transaction is the snapshot
        return _verify(rehash)
    with _read_snapshot():
        return _verify(rehash)


@contextmanager
def _read_snapshot() -> Iterator[None]:
    """A transaction that reads one snapshot and blocks no writer while it lasts.

    PostgreSQL: REPEATABLE READ, READ ONLY. SQLite: a DEFERRED transaction, which in WAL
    journal mode (``arbiter.settings``) reads the snapshot of its first read while others
    write; the IMMEDIATE mode its other transactions begin in takes the write lock at
    BEGIN, so a check would make every decision wait for it, and fail after the busy
    timeout (20 s) as "could not be logged" on a log that takes longer to check.
    """
    if connection.vendor == "postgresql":
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            yield
        return
    if connection.vendor != "sqlite":  # no other database is supported; no mode to set
        with transaction.atomic():
            yield
        return
    connection.ensure_connection()
    mode = connection.transaction_mode
    connection.transaction_mode = "DEFERRED"
    try:
        with transaction.atomic():
            connection.transaction_mode = mode  # BEGIN was sent; savepoints need no mode
            yield
    finally:
        connection.transaction_mode = mode


def decision_purge_latest() -> DecisionPurge | None:
    """The purge that reached furthest (``decisions.retention``): blocks 1..its
    ``through_block`` hold no decisions. None before the first purge."""
    return DecisionPurge.objects.order_by("-through_block").first()


def _verify(rehash: Callable[[int], bool] | None = None) -> LogReport:
    report = LogReport()
    previous = GENESIS_HASH
    after = 0
    anchor = (
        LogVerification.objects.filter(ok=True, blocks__gt=0)
        .order_by("-started_at", "-pk")
        .only("started_at", "blocks", "head_hash")
        .first()
    )
    purge = decision_purge_latest()
    purged_through = purge.through_block if purge else 0
    if purge is not None:
        back = Decision.objects.filter(seq__lte=purge.last_seq).order_by("seq").first()
        if back is not None:
            inside = DecisionBlock.objects.filter(last_seq__gte=back.seq).order_by("number")
            number = inside.values_list("number", flat=True).first()
            _fail(
                report,
                f"decision {back.decision_id} (seq {back.seq}) is in block {number}, "
                f"which the retention purge of blocks 1-{purged_through} emptied",
                block=number,
                row=str(back.decision_id),
            )
            return report
    for block in DecisionBlock.objects.order_by("number").iterator(chunk_size=200):
        report.blocks += 1
        if block.number != report.blocks:
            _fail(report, f"block {report.blocks} is missing", block=report.blocks)
            return report
        if block.prev_hash != previous or block.after_seq != after:
            _fail(
                report,
                f"block {block.number} does not follow block {block.number - 1}",
                block=block.number,
            )
            return report
        if _block_hash(block) != block.hash:
            _fail(report, f"block {block.number} was altered", block=block.number)
            return report
        if anchor is not None and block.number == anchor.blocks and block.hash != anchor.head_hash:
            _fail(
                report,
                f"block {block.number} no longer has the hash the verification of "
                f"{anchor.started_at:%Y-%m-%d %H:%M} UTC recorded: the log was rewritten since",
                block=block.number,
            )
            return report
        if block.number <= purged_through:
            if block.number == purged_through and block.last_seq != purge.last_seq:
                _fail(
                    report,
                    f"the retention purge through block {block.number} names seq "
                    f"{purge.last_seq}, the block ends at {block.last_seq}",
                    block=block.number,
                )
                return report
            report.purged_blocks += 1
            report.purged_rows += block.row_count
            previous, after = block.hash, block.last_seq
            continue
        if rehash is not None and not rehash(block.number):
            report.skipped_blocks += 1
            report.skipped_rows += block.row_count
            previous, after = block.hash, block.last_seq
            continue
        rows = []
        for seq, decision_id, content_hash, recomputed in _stored_hashes(
            seq__gt=block.after_seq, seq__lte=block.last_seq
        ):
            if recomputed != content_hash:
                _fail(
                    report,
                    f"decision {decision_id} (seq {seq}) was altered",
                    block=block.number,
                    row=decision_id,
                )
                return report
            rows.append((seq, content_hash))
        if len(rows) != block.row_count or _digest(rows) != block.rows_digest:
            kind = "removed from" if len(rows) < block.row_count else "inserted into"
            if len(rows) == block.row_count:
                kind = "replaced in"
            _fail(
                report,
                f"block {block.number}: decisions were {kind} it "
                f"({len(rows)} rows, {block.row_count} sealed)",
                block=block.number,
            )
            return report
        report.rows += len(rows)
        previous, after = block.hash, block.last_seq
    if purged_through > report.blocks:
        _fail(
            report,
            f"a retention purge names block {purged_through}; the chain has {report.blocks}",
            block=report.blocks + 1,
        )
        return report
    head = ChainHead.objects.filter(name=CHAIN).first()
    if head is not None and (head.seq != report.blocks or head.hash != previous):
        _fail(report, "sealed blocks were removed from the end", block=report.blocks + 1)
    elif anchor is not None and report.blocks < anchor.blocks:
        _fail(
            report,
            f"the verification of {anchor.started_at:%Y-%m-%d %H:%M} UTC found "
            f"{anchor.blocks} blocks; the log has {report.blocks}: blocks were removed "
            "from the end",
            block=report.blocks + 1,
        )
    else:
        report.head_hash = previous
    for seq, decision_id, content_hash, recomputed in _stored_hashes(seq__gt=after):
        report.unsealed += 1
        if recomputed != content_hash:
            _fail(
                report,
                f"unsealed decision {decision_id} (seq {seq}) was altered",
                block=None,
                row=decision_id,
            )
            return report
    return report


def decision_log_rolling(days: int, *, today: int | None = None) -> Callable[[int], bool] | None:
    """Which blocks the daily check re-hashes when ``DECISION_LOG_VERIFY_DAYS`` is ``days``
    (None: all of them, for ``days`` 1). Every block sealed since the last intact check,
    and one slice of the older ones: block ``n`` when ``n % days`` is the day's number
    (``today``, default the date's ordinal), so that every row is re-hashed at least every
    ``days`` days while a daily check costs about 1/``days`` of a full one on a large log.
    Every block's header and link is checked daily whatever this says."""
    if days <= 1:
        return None
    last = LogVerification.objects.filter(ok=True).order_by("-started_at", "-pk").first()
    seen = last.blocks if last is not None else 0
    day = (timezone.now().date().toordinal() if today is None else today) % days
    return lambda number: number > seen or number % days == day


def decision_log_verify_record(
    *, source: str, requested_by: str = "", rehash: Callable[[int], bool] | None = None
) -> LogVerification:
    """``decision_log_verify``, timed and kept as a ``LogVerification`` (the pages show the
    latest). Reads the log only; the record is written when the check ends."""
    started_at, started = timezone.now(), time.perf_counter()
    report = decision_log_verify(rehash=rehash)
    return LogVerification.objects.create(
        started_at=started_at,
        seconds=round(time.perf_counter() - started, 3),
        source=source,
        requested_by=requested_by,
        ok=report.ok,
        blocks=report.blocks,
        rows=report.rows,
        unsealed=report.unsealed,
        purged_blocks=report.purged_blocks,
        purged_rows=report.purged_rows,
        skipped_blocks=report.skipped_blocks,
        skipped_rows=report.skipped_rows,
        head_hash=report.head_hash,
        first_bad_block=report.first_bad_block,
        first_bad_row=report.first_bad_row or "",
        problems=report.problems,
    )
