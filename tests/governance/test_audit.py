"""The audit chain: tampering is refused by PostgreSQL, and detected by verify_audit anyway."""

from __future__ import annotations

import io
import itertools

import pytest
from django.core.management import call_command
from django.db import DatabaseError, connection, transaction

from governance.audit import audit_chain_verify
from governance.hashing import GENESIS_HASH
from governance.models import AuditEvent, VersionStatus
from tests.governance.factories import note_version

pytestmark = pytest.mark.django_db

on_postgres = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="needs PostgreSQL (set DATABASE_URL); CI runs it"
)


def run_sql(sql: str, params: tuple = ()) -> None:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def tamper(sql: str, params: tuple = ()) -> None:
    """What an attacker with the owner's rights does: switch the guards off, then write.

    On PostgreSQL a superuser can skip triggers for one transaction (undone when the
    test rolls back); SQLite has no guards to switch off.
    """
    if connection.vendor == "postgresql":
        run_sql("SET LOCAL session_replication_role = replica")
    run_sql(sql, params)


def verify_command() -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("verify_audit", stdout=out, stderr=err)
    except SystemExit as exit_:
        return int(exit_.code), err.getvalue()
    return 0, out.getvalue()


@pytest.fixture
def history(maker, checker):
    note_version(maker=maker, checker=checker, status=VersionStatus.ACTIVE, name="a")
    note_version(maker=maker, checker=checker, status=VersionStatus.REJECTED, name="b")
    return list(AuditEvent.objects.order_by("seq"))


def test_intact_chain_verifies_and_prints_its_head(history):
    code, output = verify_command()
    assert code == 0, output
    head = history[-1]
    assert f"{len(history)} events, head #{head.seq} {head.hash}" in output
    assert history[0].prev_hash == GENESIS_HASH
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(history))


def test_altered_event_is_named(history):
    victim = history[3]
    tamper("UPDATE governance_auditevent SET comment = %s WHERE seq = %s", ("ok", victim.seq))
    code, output = verify_command()
    assert code == 1
    assert f"First bad event: #{victim.seq}" in output
    assert "was altered" in output
    # No head is printed as if verified: not the genesis hash, not the one in the table.
    assert f"{victim.seq - 1} events verify before the break" in output
    assert "The chain's head could not be established: record no head" in output
    assert "head #" not in output and GENESIS_HASH not in output
    assert AuditEvent.objects.latest("seq").hash not in output
    report = audit_chain_verify()
    assert (report.head_seq, report.head_hash) == (None, None)


def test_removed_event_is_named(history):
    victim = history[4]
    tamper("DELETE FROM governance_auditevent WHERE seq = %s", (victim.seq,))
    code, output = verify_command()
    assert code == 1
    assert f"First bad event: #{victim.seq + 1}" in output
    assert f"event #{victim.seq} was removed" in output


def test_event_cut_from_the_end_is_detected(history):
    tamper("DELETE FROM governance_auditevent WHERE seq = %s", (history[-1].seq,))
    report = audit_chain_verify()
    assert not report.ok
    assert "removed from the end" in report.problems[0]
    assert report.head_hash is None  # neither the head row's hash nor the last event's
    code, output = verify_command()
    assert code == 1
    assert "head could not be established" in output
    assert AuditEvent.objects.latest("seq").hash not in output
    assert history[-1].hash not in output  # the head row's


def test_a_broken_chain_shows_no_head_on_the_audit_trail_page(history, auditor):
    from django.test import Client

    browser = Client()
    browser.force_login(auditor)
    head = AuditEvent.objects.latest("seq").hash
    assert f"Head of the chain: <code>{head}</code>" in browser.get("/audit/").content.decode()
    tamper("UPDATE governance_auditevent SET comment = %s WHERE seq = %s", ("ok", history[2].seq))
    page = browser.get("/audit/").content.decode()
    assert "The head of the chain could not be established" in page
    assert "Head of the chain:" not in page and GENESIS_HASH not in page


def test_event_inserted_out_of_chain_is_detected(history, maker):
    forged = history[2]
    tamper(
        "UPDATE governance_auditevent SET prev_hash = %s WHERE seq = %s",
        ("f" * 64, forged.seq),
    )
    report = audit_chain_verify()
    assert report.first_bad_event == forged.seq
    assert "does not chain" in report.problems[0]


def test_altered_sealed_content_is_detected(history):
    tamper(
        "UPDATE governance_version SET content = %s WHERE number = 1 AND status = 'active'",
        ('{"text": "be unkind"}',),
    )
    report = audit_chain_verify()
    assert any("does not match its content hash" in p for p in report.problems)


def test_rehashed_content_still_differs_from_the_sealed_submit_event(history):
    from governance.hashing import version_hash

    forged = version_hash({"text": "be unkind"}, None)
    tamper(
        "UPDATE governance_version SET content = %s, content_hash = %s WHERE status = 'active'",
        ('{"text": "be unkind"}', forged),
    )
    report = audit_chain_verify()
    assert any("sealed when it was submitted" in p for p in report.problems)


@on_postgres
@pytest.mark.postgres
@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE governance_auditevent SET comment = 'rewritten'",
        "DELETE FROM governance_auditevent",
        "UPDATE governance_version SET content = '{\"text\": \"x\"}' WHERE status <> 'draft'",
        "UPDATE governance_version SET content_hash = repeat('0', 64) WHERE status = 'active'",
        "UPDATE governance_version SET status = 'approved' WHERE status = 'rejected'",
        "UPDATE governance_version SET status = 'draft' WHERE status = 'active'",
        "DELETE FROM governance_version WHERE status = 'active'",
    ],
)
def test_postgres_refuses_tampering(history, sql):
    events = AuditEvent.objects.count()
    with pytest.raises(DatabaseError), transaction.atomic():
        run_sql(sql)
    assert AuditEvent.objects.count() == events
    assert audit_chain_verify().ok


@on_postgres
@pytest.mark.postgres
def test_postgres_still_lets_drafts_change(maker, checker):
    draft = note_version(maker=maker, checker=checker, status=VersionStatus.DRAFT)
    run_sql("UPDATE governance_version SET content = %s WHERE id = %s", ('{"text": "y"}', draft.pk))
    draft.refresh_from_db()
    assert draft.content == {"text": "y"}
