"""The audit chain: every governance action as a hash-linked event, and its verification.

Appends lock the ``ChainHead`` row, so events get gap-free ``seq`` numbers in commit
order. Lock order across governance: Item, then Version, then ChainHead.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from governance.artifacts import artifact_problem
from governance.hashing import GENESIS_HASH, canonical_json, sha256_hex, version_hash
from governance.models import AuditAction, AuditEvent, ChainHead, Version, VersionStatus

CHAIN_NAME = "governance"


# The fields an event's hash covers, in the order the CSV export writes them.
EVENT_HASH_FIELDS = (
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
)


def _payload(event: AuditEvent) -> dict[str, Any]:
    payload = {name: getattr(event, name) for name in EVENT_HASH_FIELDS}
    payload["created_at"] = event.created_at.isoformat()
    return payload


def event_hash(event: AuditEvent) -> str:
    """The hash an event must carry, computed from its fields and its predecessor's hash."""
    return sha256_hex(canonical_json(_payload(event)))


def audit_record(
    *,
    actor: AbstractBaseUser | None,
    action: AuditAction | str,
    kind: str = "",
    item_name: str = "",
    version_number: int | None = None,
    old_status: str = "",
    new_status: str = "",
    content_hash: str = "",
    comment: str = "",
    details: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append one event to the chain, inside the caller's transaction.

    Locks the chain head row until the caller commits, so concurrent governance actions
    append one after another; if the caller rolls back, the event and the head move go
    with it.
    """
    with transaction.atomic():
        head, _ = ChainHead.objects.select_for_update().get_or_create(
            name=CHAIN_NAME, defaults={"seq": 0, "hash": GENESIS_HASH}
        )
        event = AuditEvent(
            seq=head.seq + 1,
            created_at=timezone.now(),
            actor=actor,
            actor_username=getattr(actor, "username", "") or "system",
            action=str(action),
            kind=kind,
            item_name=item_name,
            version_number=version_number,
            old_status=old_status,
            new_status=new_status,
            content_hash=content_hash,
            comment=comment,
            details=details or {},
            prev_hash=head.hash,
        )
        event.hash = event_hash(event)
        event.save(force_insert=True)
        head.seq = event.seq
        head.hash = event.hash
        head.save(update_fields=["seq", "hash"])
    return event


@dataclass
class ChainReport:
    """What ``audit_chain_verify`` found. ``ok`` only when nothing at all was wrong.

    ``events`` counts the events that verify, from #1 up to the first bad one. ``head_seq``
    and ``head_hash`` are the chain's head only once every event and the head row verify;
    on a broken chain they are None: there is no head anyone could record.
    """

    events: int = 0
    head_seq: int | None = None
    head_hash: str | None = None
    versions_checked: int = 0
    first_bad_event: int | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _check_events(report: ChainReport) -> None:
    previous_hash = GENESIS_HASH
    expected_seq = 1
    for event in AuditEvent.objects.order_by("seq").iterator(chunk_size=2000):
        problem = None
        if event.seq != expected_seq:
            problem = (
                f"event #{event.seq} follows #{expected_seq - 1}: event #{expected_seq} was removed"
            )
        elif event.prev_hash != previous_hash:
            problem = (
                f"event #{event.seq} does not chain to #{event.seq - 1}: one of them was "
                "altered, or it was inserted out of chain"
            )
        elif event_hash(event) != event.hash:
            problem = f"event #{event.seq} was altered: its fields do not match its hash"
        if problem:
            report.problems.append(problem)
            report.first_bad_event = event.seq
            return
        previous_hash = event.hash
        expected_seq += 1
        report.events += 1

    head = ChainHead.objects.filter(name=CHAIN_NAME).first()
    head_seq = head.seq if head else 0
    head_hash = head.hash if head else GENESIS_HASH
    if head_seq != report.events or head_hash != previous_hash:
        report.first_bad_event = report.events + 1 if head_seq > report.events else head_seq
        report.problems.append(
            f"the chain ends at event #{report.events} but its head records #{head_seq}: "
            "events were removed from the end, or the head was altered"
        )
        return
    report.head_seq, report.head_hash = head_seq, head_hash


def _submitted_hashes() -> Iterator[tuple[tuple[str, str, int | None], str]]:
    rows = AuditEvent.objects.filter(action=AuditAction.SUBMIT).values_list(
        "kind", "item_name", "version_number", "content_hash"
    )
    for kind, item_name, number, content_hash in rows:
        yield (kind, item_name, number), content_hash


def _check_versions(report: ChainReport, *, artifacts: bool) -> None:
    submitted = dict(_submitted_hashes())
    versions = (
        Version.objects.exclude(status=VersionStatus.DRAFT)
        .select_related("item")
        .order_by("item__kind", "item__name", "number")
    )
    for version in versions.iterator(chunk_size=500):
        label = f"{version.item.kind} {version.item.name} v{version.number}"
        report.versions_checked += 1
        if version_hash(version.content, version.artifact_sha256) != version.content_hash:
            report.problems.append(f"{label}: its content does not match its content hash")
            continue
        sealed = submitted.get((version.item.kind, version.item.name, version.number))
        if sealed is None:
            report.problems.append(f"{label}: no submit event in the audit chain")
        elif sealed != version.content_hash:
            report.problems.append(
                f"{label}: its content hash differs from the one sealed when it was submitted"
            )
        if artifacts and version.has_artifact:
            problem = artifact_problem(version.artifact_path, version.artifact_sha256)
            if problem:
                report.problems.append(f"{label}: {problem}")


def audit_chain_verify(*, versions: bool = True, artifacts: bool = True) -> ChainReport:
    """Recompute the whole chain and, unless told not to, every sealed version.

    Reads only; takes no locks (a verification racing an append may report the head as
    ahead of the events it read, so run it again before raising an alarm).
    """
    report = ChainReport()
    _check_events(report)
    if versions:
        _check_versions(report, artifacts=artifacts)
    return report
