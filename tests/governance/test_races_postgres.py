"""On PostgreSQL, with real concurrent transactions: governance moves that race each other.

Two checkers approve the same version in the same instant, two versions of one item are
activated at once, several makers draft a new item together. The row locks in the services
must leave one outcome (one approval, one active version, distinct version numbers) and an
audit chain that still verifies; the losers get the error a single late request gets.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection

from governance import services
from governance.audit import audit_chain_verify
from governance.exceptions import Conflict, TransitionNotAllowed
from governance.models import AuditAction, AuditEvent, Item, Version, VersionStatus
from tests.governance.factories import note_version

on_postgres = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="needs PostgreSQL (set DATABASE_URL); CI runs it"
)
pytestmark = [on_postgres, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def race(calls: list[Callable[[], Any]]) -> list[tuple[str, Any]]:
    """Run every call in its own thread and connection, released together by a barrier;
    each result is ("ok", value) or ("error", exception), in the order of ``calls``."""
    barrier = threading.Barrier(len(calls))
    results: list[tuple[str, Any] | None] = [None] * len(calls)

    def run(index: int, call: Callable[[], Any]) -> None:
        try:
            barrier.wait(timeout=10)
            results[index] = ("ok", call())
        except BaseException as exc:  # reported to the test
            results[index] = ("error", exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=pair) for pair in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert all(result is not None for result in results), "a racing call did not finish"
    return results  # type: ignore[return-value]


def test_makers_drafting_together_get_one_item_and_distinct_numbers(maker, maker2):
    def drafts(count: int) -> list[Callable[[], Version]]:
        return [
            (
                lambda actor=actor, i=i: services.version_create(
                    actor=actor, kind="note", name="new-rules", content={"text": f"draft {i}"}
                )
            )
            for i, actor in enumerate([maker, maker2] * (count // 2))
        ]

    # First the item is new to both makers, then it exists and six draft at once.
    results = race(drafts(2)) + race(drafts(6))
    assert [kind for kind, _ in results] == ["ok"] * 8, results
    assert sorted(version.number for _, version in results) == list(range(1, 9))
    assert Item.objects.filter(kind="note", name="new-rules").count() == 1
    created = AuditEvent.objects.filter(action=AuditAction.CREATE, item_name="new-rules")
    assert created.count() == 8
    assert [e.details.get("new_item") for e in created].count(True) == 1
    report = audit_chain_verify()
    assert report.ok, report.problems


def test_checkers_approving_the_same_version_at_once_approve_it_once(maker, checker, checker2):
    version = note_version(maker=maker, checker=checker, status=VersionStatus.SUBMITTED)
    reviewers = [checker, checker2, checker, checker2]
    calls = [
        (
            lambda actor=actor: services.version_approve(
                actor=actor, version=version, comment=f"approved by {actor.username}"
            )
        )
        for actor in reviewers
    ]
    results = race(calls)
    winners = [index for index, (kind, _) in enumerate(results) if kind == "ok"]
    assert len(winners) == 1, results
    losers = [value for kind, value in results if kind == "error"]
    assert all(isinstance(error, TransitionNotAllowed) for error in losers), losers
    assert all("it is approved" in str(error) for error in losers)
    version.refresh_from_db()
    winner = reviewers[winners[0]]
    assert (version.status, version.reviewed_by) == (VersionStatus.APPROVED, winner)
    assert version.review_comment == f"approved by {winner.username}"
    approvals = AuditEvent.objects.filter(action=AuditAction.APPROVE, item_name=version.item.name)
    assert [e.actor_username for e in approvals] == [winner.username]
    report = audit_chain_verify()
    assert report.ok, report.problems


def test_versions_activated_at_once_leave_exactly_one_active(maker, checker, checker2):
    first = note_version(maker=maker, checker=checker, status=VersionStatus.ACTIVE, text="v1")
    candidates = []
    for text in ("v2", "v3"):
        candidates.append(
            note_version(maker=maker, checker=checker, status=VersionStatus.APPROVED, text=text)
        )
    calls = [
        (
            lambda actor=actor, version=version: services.version_activate(
                actor=actor, version=version
            )
        )
        for actor, version in zip([checker, checker2], candidates, strict=True)
    ]
    results = race(calls)
    # The item's row lock puts the two in some order: both may succeed (the later one
    # retiring the earlier), or one may be refused; never two active versions.
    for kind, value in results:
        assert kind == "ok" or isinstance(value, (Conflict, TransitionNotAllowed)), value
    statuses = dict(Version.objects.filter(item=first.item).values_list("number", "status"))
    assert list(statuses.values()).count(VersionStatus.ACTIVE) == 1, statuses
    assert statuses[1] == VersionStatus.RETIRED
    activated = [
        e.version_number
        for e in AuditEvent.objects.filter(
            action=AuditAction.ACTIVATE, item_name=first.item.name
        ).order_by("seq")
    ]
    # The last activation in the chain names the version that is active now.
    active_number = next(n for n, s in statuses.items() if s == VersionStatus.ACTIVE)
    assert activated[-1] == active_number
    assert len(activated) == 1 + sum(kind == "ok" for kind, _ in results)
    retired = AuditEvent.objects.filter(action=AuditAction.RETIRE, item_name=first.item.name)
    assert retired.count() == list(statuses.values()).count(VersionStatus.RETIRED)
    report = audit_chain_verify()
    assert report.ok, report.problems


def test_drafts_submitted_at_once_put_one_under_review(maker, maker2):
    drafts = [
        services.version_create(actor=actor, kind="note", name="house-rules", content={"text": t})
        for actor, t in ((maker, "a"), (maker2, "b"))
    ]
    calls = [
        (lambda actor=actor, version=version: services.version_submit(actor=actor, version=version))
        for actor, version in zip([maker, maker2], drafts, strict=True)
    ]
    results = race(calls)
    assert sorted(kind for kind, _ in results) == ["error", "ok"], results
    refused = next(value for kind, value in results if kind == "error")
    assert isinstance(refused, Conflict) and "already under review" in str(refused)
    statuses = sorted(
        Version.objects.filter(item__name="house-rules").values_list("status", flat=True)
    )
    assert statuses == [VersionStatus.DRAFT, VersionStatus.SUBMITTED]
    assert AuditEvent.objects.filter(action=AuditAction.SUBMIT).count() == 1
    report = audit_chain_verify()
    assert report.ok, report.problems
