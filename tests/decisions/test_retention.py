"""Retention: decisions past DECISION_RETENTION_MONTHS can be purged, and only so.

Tests set the retention to 0 months where they purge, so that "sealed before the cutoff"
means "sealed before now"; blocks sealed later than a purge's ``before`` stay whole.
"""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from decisions.decision_log import decision_blocks_seal, decision_log_verify
from decisions.models import Decision, DecisionBlock, DecisionPurge
from decisions.retention import decision_log_purge, months_before, retention_cutoff
from decisions.services import decision_make
from governance.exceptions import PermissionDenied, PreconditionFailed, ValidationFailed
from governance.models import AuditAction, AuditEvent
from monitoring.models import Outcome
from monitoring.services import outcome_batch_record
from tests.decisions.test_decision_log import features

pytestmark = pytest.mark.django_db

POSTGRES = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="the append-only triggers are PostgreSQL's"
)


def make(actor, n: int, prefix: str) -> list[Decision]:
    return [
        decision_make(
            actor=actor, deployment="cross-sell", customer_id=f"{prefix}-{i}", features=features(i)
        ).decision
        for i in range(n)
    ]


@pytest.fixture
def sealed_twice(cross_sell_deployment, api_client_user, settings):
    """Five decisions sealed in blocks 1-3, then (``between``) four more in blocks 4-5."""
    settings.DECISION_BLOCK_ROWS = 2
    settings.DECISION_RETENTION_MONTHS = 0
    old = make(api_client_user, 5, "old")
    assert len(decision_blocks_seal(grace_seconds=0)) == 3
    between = timezone.now()
    new = make(api_client_user, 4, "new")
    assert len(decision_blocks_seal(grace_seconds=0)) == 2
    return old, between, new


def test_months_before_counts_calendar_months():
    at = datetime(2026, 3, 31, 12, 30, tzinfo=UTC)
    assert months_before(at, 1) == datetime(2026, 2, 28, 12, 30, tzinfo=UTC)
    assert months_before(at, 25) == datetime(2024, 2, 29, 12, 30, tzinfo=UTC)
    assert months_before(datetime(2026, 1, 15, tzinfo=UTC), 1) == datetime(2025, 12, 15, tzinfo=UTC)
    assert months_before(at, 0) == at


def test_a_purge_removes_whole_old_blocks_and_the_log_still_verifies(
    sealed_twice, admin_user, api_client_user
):
    old, between, new = sealed_twice
    items = [
        {"decision_id": str(d.decision_id), "event": "accepted", "occurred_at": d.created_at}
        for d in (old[0], new[0])
    ]
    assert outcome_batch_record(actor=api_client_user, items=items).created == 2

    report = decision_log_purge(actor=admin_user, before=between)

    assert (report.blocks, report.rows, report.outcomes, report.through_block) == (3, 5, 1, 3)
    assert sorted(Decision.objects.values_list("customer_id", flat=True)) == [
        f"new-{i}" for i in range(4)
    ]
    assert list(Outcome.objects.values_list("decision_id", flat=True)) == [new[0].decision_id]
    assert DecisionBlock.objects.count() == 5  # the blocks stay: the chain still links
    verified = decision_log_verify()
    assert verified.ok, verified.problems
    assert (verified.blocks, verified.purged_blocks, verified.purged_rows) == (5, 3, 5)
    assert verified.rows == 4
    purge = DecisionPurge.objects.get()
    assert (purge.through_block, purge.rows_removed, purge.purged_by) == (3, 5, admin_user)
    event = AuditEvent.objects.get(action=AuditAction.DECISION_PURGE)
    assert event.actor == admin_user and event.details["through_block"] == 3
    assert "Purged 5 decisions and 1 outcomes of blocks 1-3" in event.comment

    # Again: nothing more is old enough; then everything, with a later cutoff.
    assert decision_log_purge(actor=admin_user, before=between).blocks == 0
    assert decision_log_purge(actor=admin_user).rows == 4
    assert not Decision.objects.exists() and decision_log_verify().ok


def test_a_dry_run_counts_and_removes_nothing(sealed_twice, admin_user):
    _, between, _ = sealed_twice
    report = decision_log_purge(actor=admin_user, before=between, dry_run=True)
    assert (report.blocks, report.rows, report.through_block) == (3, 5, 3)
    assert Decision.objects.count() == 9 and not DecisionPurge.objects.exists()


def test_nothing_younger_than_the_retention_period_can_be_purged(
    cross_sell_deployment, admin_user, api_client_user, settings
):
    settings.DECISION_RETENTION_MONTHS = 25
    make(api_client_user, 2, "kept")
    decision_blocks_seal(grace_seconds=0)
    assert decision_log_purge(actor=admin_user).blocks == 0  # the default is the cutoff
    with pytest.raises(ValidationFailed, match="must be kept 25 months") as refused:
        decision_log_purge(actor=admin_user, before=timezone.now())
    assert "before" in refused.value.details
    with pytest.raises(ValidationFailed):
        decision_log_purge(actor=admin_user, before=datetime(2020, 1, 1))  # no time zone
    assert Decision.objects.count() == 2
    assert retention_cutoff() < timezone.now() - timedelta(days=25 * 28)


def test_only_administrators_purge(sealed_twice, checker, auditor):
    for actor in (checker, auditor):
        with pytest.raises(PermissionDenied):
            decision_log_purge(actor=actor)
    assert Decision.objects.count() == 9


@POSTGRES
def test_rows_removed_or_put_back_around_a_purge_are_still_caught(sealed_twice, admin_user):
    old, between, new = sealed_twice
    decision_log_purge(actor=admin_user, before=between)
    # Someone who owns the database deletes a row of a block no purge covers, past the
    # triggers (as a superuser may)...
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL session_replication_role = replica")
        cursor.execute("DELETE FROM decisions_decision WHERE seq = %s", [new[1].seq])
    report = decision_log_verify()
    assert not report.ok and report.first_bad_block == 4
    assert "removed from" in report.problems[0]
    # ...or puts a purged row back.
    old[2].save(force_insert=True)
    report = decision_log_verify()
    assert not report.ok and report.first_bad_row == str(old[2].decision_id)
    assert "which the retention purge of blocks 1-3 emptied" in report.problems[0]


@POSTGRES
def test_outside_a_purge_the_triggers_still_refuse(sealed_twice, admin_user):
    _, between, new = sealed_twice
    decision_log_purge(actor=admin_user, before=between)
    for sql, params in [
        ("DELETE FROM decisions_decision WHERE seq = %s", [new[0].seq]),
        ("UPDATE decisions_decisionpurge SET rows_removed = 0", []),
        ("DELETE FROM decisions_decisionpurge", []),
        ("DELETE FROM decisions_decisionblock WHERE number = 1", []),
    ]:
        with (
            pytest.raises(DatabaseError, match="append-only"),
            transaction.atomic(),
            connection.cursor() as cursor,
        ):
            cursor.execute(sql, params)
    # The purge's own permission ends with its transaction.
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('arbiter.retention_purge', true)")
        assert cursor.fetchone()[0] in (None, "", "off")
    assert decision_log_verify().ok


@POSTGRES
def test_the_purge_setting_alone_deletes_nothing_a_purge_record_does_not_cover(
    sealed_twice, admin_user, api_client_user
):
    """Any session may set arbiter.retention_purge: it lets a DELETE through only for rows
    (and their outcomes) of blocks a purge recorded first, never rows not yet sealed."""
    _, between, new = sealed_twice
    unsealed = make(api_client_user, 1, "unsealed")[0]
    assert (
        outcome_batch_record(
            actor=api_client_user,
            items=[
                {
                    "decision_id": str(d.decision_id),
                    "event": "accepted",
                    "occurred_at": d.created_at,
                }
                for d in (new[0], unsealed)
            ],
        ).created
        == 2
    )
    decision_log_purge(actor=admin_user, before=between)
    for sql, params in [
        ("DELETE FROM decisions_decision WHERE seq = %s", [unsealed.seq]),
        ("DELETE FROM decisions_decision WHERE seq = %s", [new[0].seq]),
        ("DELETE FROM monitoring_outcome WHERE decision_id = %s", [unsealed.decision_id]),
        ("DELETE FROM monitoring_outcome WHERE decision_id = %s", [new[0].decision_id]),
    ]:
        for shadow in (False, True):
            with (
                pytest.raises(DatabaseError, match="append-only"),
                transaction.atomic(),
                connection.cursor() as cursor,
            ):
                cursor.execute("SET LOCAL arbiter.retention_purge = 'on'")
                if shadow:  # a temporary table of that name is found before the real one
                    cursor.execute(
                        "CREATE TEMPORARY TABLE decisions_decisionpurge ON COMMIT DROP AS "
                        "SELECT 9223372036854775807::bigint AS last_seq"
                    )
                cursor.execute(sql, params)
    assert Decision.objects.count() == 5 and Outcome.objects.count() == 2
    assert decision_log_verify().ok


@POSTGRES
def test_a_purge_of_blocks_not_as_sealed_refuses_and_removes_nothing(sealed_twice, admin_user):
    old, between, _ = sealed_twice
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL session_replication_role = replica")
        cursor.execute("DELETE FROM decisions_decision WHERE seq = %s", [old[0].seq])
    with pytest.raises(PreconditionFailed, match="were sealed with 5 decisions, but 4") as refused:
        decision_log_purge(actor=admin_user, before=between)
    assert refused.value.code == "log_not_intact"
    assert not DecisionPurge.objects.exists()
    assert Decision.objects.count() == 8


def test_purge_decisions_command(sealed_twice, admin_user, checker):
    _, between, _ = sealed_twice
    out = io.StringIO()
    at = between.astimezone(UTC).isoformat()
    call_command("purge_decisions", "--user", admin_user.username, "--before", at, "--dry-run",
                 stdout=out)  # fmt: skip
    assert "Would purge 5 decisions and 0 outcomes in 3 sealed block(s)" in out.getvalue()
    assert Decision.objects.count() == 9

    call_command("purge_decisions", "--user", admin_user.username, "--before", at, stdout=out)
    assert "Purged 5 decisions and 0 outcomes in 3 sealed block(s)" in out.getvalue()
    assert "blocks 1-3 now hold no decisions" in out.getvalue()
    out = io.StringIO()
    call_command("verify_decisions", stdout=out)
    assert "5 blocks (3 emptied by retention purges: 5 decisions removed)" in out.getvalue()

    with pytest.raises(CommandError, match="is not a date or time"):
        call_command("purge_decisions", "--user", admin_user.username, "--before", "soon")
    with pytest.raises(CommandError, match="may not purge decisions past retention"):
        call_command("purge_decisions", "--user", checker.username)
    with pytest.raises(CommandError, match="no user called"):
        call_command("purge_decisions", "--user", "nobody")


@POSTGRES
@pytest.mark.django_db(transaction=True)  # each batch commits on its own
def test_a_purge_the_database_stops_keeps_whole_batches_and_says_how_far_it_got(
    sealed_twice, admin_user, monkeypatch
):
    from decisions import retention

    monkeypatch.setattr(retention, "PURGE_BATCH_BLOCKS", 2)
    _, between, _ = sealed_twice
    second = int(DecisionBlock.objects.get(number=2).last_seq)
    with connection.cursor() as cursor:  # the second batch's DELETE fails
        cursor.execute(
            "CREATE FUNCTION test_refuse() RETURNS trigger LANGUAGE plpgsql AS "
            f"$$ BEGIN IF OLD.seq > {second} THEN RAISE EXCEPTION 'disk full'; END IF; "
            "RETURN OLD; END $$"
        )
        cursor.execute(
            "CREATE TRIGGER test_refuse BEFORE DELETE ON decisions_decision "
            "FOR EACH ROW EXECUTE FUNCTION test_refuse()"
        )
    try:
        with pytest.raises(CommandError, match="So far blocks 1-2 are purged; run the command"):
            call_command("purge_decisions", "--user", admin_user.username,
                         "--before", between.isoformat())  # fmt: skip
    finally:
        with connection.cursor() as cursor:
            cursor.execute("DROP TRIGGER test_refuse ON decisions_decision")
            cursor.execute("DROP FUNCTION test_refuse()")
    assert DecisionPurge.objects.get().through_block == 2
    assert Decision.objects.count() == 5  # 4 purged (blocks 1-2), block 3 and 4 new ones
    assert decision_log_verify().ok
    call_command("purge_decisions", "--user", admin_user.username, "--before", between.isoformat())
    assert Decision.objects.count() == 4 and decision_log_verify().ok
