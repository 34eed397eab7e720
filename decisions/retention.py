"""Retention of the decision log: removing decisions older than the law asks to keep.

``DECISION_RETENTION_MONTHS`` (25: Regulation B, 12 CFR 1002.12, for credit
applications) is the least the log keeps. Nothing is removed automatically: an
administrator runs ``manage.py purge_decisions``, which removes the decisions of whole
sealed blocks sealed before the cutoff, oldest first, with their outcomes. The blocks
stay, so the chain of block hashes still verifies from the first block; each purge is a
``DecisionPurge`` record and a governance audit event, and ``verify_decisions`` still
reports any row missing from a block no purge covers, or any row back in one that a
purge emptied.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import connection, transaction
from django.utils import timezone

from decisions.decision_log import CHAIN, decision_purge_latest
from decisions.models import Decision, DecisionBlock, DecisionPurge
from governance.audit import audit_record
from governance.exceptions import PreconditionFailed, ValidationFailed
from governance.models import AuditAction, ChainHead
from governance.roles import Role, require_role

# Blocks whose rows one transaction removes (DECISION_BLOCK_ROWS each, 1,000 by default).
PURGE_BATCH_BLOCKS = 200


@dataclass
class PurgeReport:
    before: datetime
    through_block: int  # every row of blocks 1..through_block is gone (after this purge)
    blocks: int = 0  # blocks this purge emptied (or would, in a dry run)
    rows: int = 0
    outcomes: int = 0
    dry_run: bool = False


def months_before(moment: datetime, months: int) -> datetime:
    """The same day and time ``months`` calendar months earlier (the month's last day
    when it is shorter: 31 March less one month is 28 or 29 February)."""
    index = moment.year * 12 + moment.month - 1 - months
    year, month = divmod(index, 12)
    day = min(moment.day, calendar.monthrange(year, month + 1)[1])
    return moment.replace(year=year, month=month + 1, day=day)


def retention_cutoff(now: datetime | None = None) -> datetime:
    """Decisions made before this may be purged: now less ``DECISION_RETENTION_MONTHS``."""
    return months_before(now or timezone.now(), settings.DECISION_RETENTION_MONTHS)


def _next_blocks(through: int, before: datetime) -> list[DecisionBlock]:
    """The blocks after ``through`` sealed before ``before``, up to the first that was not."""
    blocks = []
    candidates = DecisionBlock.objects.filter(number__gt=through).order_by("number")
    for block in candidates[:PURGE_BATCH_BLOCKS]:
        if block.number != through + len(blocks) + 1 or block.sealed_at >= before:
            break
        blocks.append(block)
    return blocks


def _purge_sql(first_after: int, last_seq: int) -> tuple[str, str, list[int]]:
    from monitoring.models import Outcome

    qn = connection.ops.quote_name
    decisions = qn(Decision._meta.db_table)
    outcomes = qn(Outcome._meta.db_table)
    delete_outcomes = (
        f"DELETE FROM {outcomes} WHERE {qn('decision_id')} IN "  # noqa: S608
        f"(SELECT {qn('decision_id')} FROM {decisions} WHERE seq > %s AND seq <= %s)"
    )
    delete_decisions = f"DELETE FROM {decisions} WHERE seq > %s AND seq <= %s"  # noqa: S608
    return delete_outcomes, delete_decisions, [first_after, last_seq]


def decision_log_purge(
    *, actor: AbstractBaseUser, before: datetime | None = None, dry_run: bool = False
) -> PurgeReport:
    """Remove the decisions, and their outcomes, of every block sealed before ``before``.

    ``before`` defaults to the retention cutoff and may not be later than it. Only whole
    blocks go, a prefix of the chain, each batch in a transaction that also writes its
    ``DecisionPurge`` and audit event. Administrators only. A dry run counts and removes
    nothing.
    """
    require_role(actor, {Role.ADMIN}, action="purge decisions past retention")
    cutoff = retention_cutoff()
    if before is None:
        before = cutoff
    elif timezone.is_naive(before):
        raise ValidationFailed(
            "The purge's time needs a time zone.", details={"before": ["no time zone"]}
        )
    elif before > cutoff:
        months = settings.DECISION_RETENTION_MONTHS
        raise ValidationFailed(
            f"Decisions must be kept {months} months (DECISION_RETENTION_MONTHS): "
            f"nothing made after {cutoff:%Y-%m-%d %H:%M} UTC may be purged.",
            details={"before": [f"later than the retention cutoff {cutoff.isoformat()}"]},
        )
    last = decision_purge_latest()
    report = PurgeReport(
        before=before, through_block=last.through_block if last else 0, dry_run=dry_run
    )
    while True:
        if dry_run:
            blocks = _next_blocks(report.through_block, before)
            if not blocks:
                return report
            first, last_seq = blocks[0].after_seq, blocks[-1].last_seq
            report.rows += Decision.objects.filter(seq__gt=first, seq__lte=last_seq).count()
            report.outcomes += _outcomes_of(blocks)
        else:
            with transaction.atomic():
                # The sealers' lock: no block is sealed, and no other purge runs, meanwhile.
                ChainHead.objects.select_for_update().filter(name=CHAIN).first()
                last = decision_purge_latest()
                report.through_block = last.through_block if last else 0
                blocks = _next_blocks(report.through_block, before)
                if not blocks:
                    return report
                # The record first: PostgreSQL's triggers let the DELETEs through only for
                # rows a purge record covers (decisions/0014).
                purge = DecisionPurge.objects.create(
                    through_block=blocks[-1].number,
                    last_seq=blocks[-1].last_seq,
                    rows_removed=sum(block.row_count for block in blocks),
                    outcomes_removed=_outcomes_of(blocks),
                    before=before,
                    purged_at=timezone.now(),
                    purged_by=actor,
                )
                removed = _remove(blocks)
                if removed != (purge.rows_removed, purge.outcomes_removed):
                    raise PreconditionFailed(
                        f"Blocks {blocks[0].number}-{blocks[-1].number} were sealed with "
                        f"{purge.rows_removed} decisions, but {removed[0]} were found to "
                        "remove: the log is not as sealed, and nothing was purged. Run "
                        "manage.py verify_decisions.",
                        code="log_not_intact",
                        details={"first_block": blocks[0].number, "rows": removed[0]},
                    )
                audit_record(
                    actor=actor,
                    action=AuditAction.DECISION_PURGE,
                    kind="decision_log",
                    comment=(
                        f"Purged {removed[0]} decisions and {removed[1]} outcomes of blocks "
                        f"{blocks[0].number}-{blocks[-1].number}, sealed before "
                        f"{before.isoformat()} (retention {settings.DECISION_RETENTION_MONTHS} "
                        "months)."
                    ),
                    details={
                        "purge": purge.pk,
                        "first_block": blocks[0].number,
                        "through_block": purge.through_block,
                        "last_seq": purge.last_seq,
                        "rows_removed": purge.rows_removed,
                        "outcomes_removed": purge.outcomes_removed,
                        "before": before.isoformat(),
                    },
                )
            report.rows += removed[0]
            report.outcomes += removed[1]
        report.blocks += len(blocks)
        report.through_block = blocks[-1].number


def _outcomes_of(blocks: list[DecisionBlock]) -> int:
    from monitoring.models import Outcome

    return Outcome.objects.filter(
        decision__seq__gt=blocks[0].after_seq, decision__seq__lte=blocks[-1].last_seq
    ).count()


def _remove(blocks: list[DecisionBlock]) -> tuple[int, int]:
    """(decisions, outcomes) removed: the blocks' rows, inside the caller's transaction."""
    delete_outcomes, delete_decisions, params = _purge_sql(blocks[0].after_seq, blocks[-1].last_seq)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # The append-only triggers let these two DELETEs through, for this transaction.
            cursor.execute("SET LOCAL arbiter.retention_purge = 'on'")
        cursor.execute(delete_outcomes, params)
        outcomes = cursor.rowcount
        cursor.execute(delete_decisions, params)
        decisions = cursor.rowcount
        if connection.vendor == "postgresql":
            cursor.execute("SET LOCAL arbiter.retention_purge = 'off'")
    return decisions, outcomes
