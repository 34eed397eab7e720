"""The decision log under concurrency and tampering: one decision per key, tamper named."""

from __future__ import annotations

import io
import logging
import threading

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import DatabaseError, connection, transaction
from django.test import Client

from decisions import decision_log
from decisions.decision_log import decision_blocks_seal, decision_hash, decision_log_verify
from decisions.demo_portfolio import synthetic_customers
from decisions.models import Decision, DecisionBlock, LogVerification
from decisions.services import decision_make

on_postgres = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="needs PostgreSQL (set DATABASE_URL); CI runs it"
)


def features(i: int) -> dict:
    row = synthetic_customers(50, seed=9).iloc[i]
    return {k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()}


def run_sql(sql: str, params: tuple = ()) -> None:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def tamper(sql: str, params: tuple = ()) -> None:
    if connection.vendor == "postgresql":
        run_sql("SET LOCAL session_replication_role = replica")
    run_sql(sql, params)


@pytest.mark.django_db(transaction=True)
def test_concurrent_identical_requests_make_one_decision(cross_sell_deployment, api_client_user):
    barrier = threading.Barrier(6)
    results: list[str] = []
    errors: list[BaseException] = []

    def request() -> None:
        try:
            barrier.wait(timeout=10)
            outcome = decision_make(
                actor=api_client_user,
                deployment="cross-sell",
                customer_id="same",
                features=features(0),
                idempotency_key="retry-me",
            )
            results.append(str(outcome.decision.decision_id))
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=request) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    assert len(results) == 6 and len(set(results)) == 1
    assert Decision.objects.filter(idempotency_key="retry-me").count() == 1


@pytest.fixture
def sealed_log(db, cross_sell_deployment, api_client_user):
    made = [
        decision_make(
            actor=api_client_user,
            deployment="cross-sell",
            customer_id=f"c-{i}",
            features=features(i),
        ).decision
        for i in range(6)
    ]
    decision_blocks_seal(max_rows=2, grace_seconds=0)
    return made


def verify(*args: str) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("verify_decisions", *args, stdout=out, stderr=err)
    except SystemExit as exit_:
        return int(exit_.code), err.getvalue()
    return 0, out.getvalue()


def test_intact_log_verifies(sealed_log):
    code, output = verify()
    assert code == 0, output
    assert "3 blocks, 6 sealed decisions" in output


def test_altered_decision_is_named(sealed_log, auditor):
    victim = sealed_log[3]
    tamper("UPDATE decisions_decision SET action_id = %s WHERE seq = %s", ("forged", victim.seq))
    code, output = verify()
    assert code == 1
    assert f"First bad decision: {victim.decision_id}" in output
    assert "First bad block: 2" in output
    # No head is printed as if verified: not the genesis hash, not the last block's.
    assert "the log's head could not be established: record no head" in output
    assert "0" * 64 not in output
    assert DecisionBlock.objects.get(number=3).hash not in output
    assert LogVerification.objects.latest("started_at").head_hash == ""
    browser = Client()
    browser.force_login(auditor)
    page = browser.get("/decisions/").content.decode()
    assert "The head of the block chain could not be established then" in page
    assert "Head of the block chain then:" not in page


def test_removed_decision_is_named_by_its_block(sealed_log):
    tamper("DELETE FROM decisions_decision WHERE seq = %s", (sealed_log[4].seq,))
    code, output = verify()
    assert code == 1
    assert "First bad block: 3" in output and "removed from" in output
    assert "head could not be established" in output
    assert DecisionBlock.objects.get(number=2).hash not in output


def test_a_log_cut_back_to_an_earlier_intact_state_is_caught_by_a_recorded_head(sealed_log):
    """Whoever holds the database can restore an older backup, or delete the latest blocks
    and their rows: what is left verifies. A head recorded outside catches it."""
    from decisions.models import DecisionBlock

    recorded = DecisionBlock.objects.get(number=3).hash
    earlier = DecisionBlock.objects.get(number=2).hash
    code, output = verify("--head", recorded)
    assert code == 0, output
    assert "the head recorded earlier is block 3 of 3" in output
    code, output = verify("--head", earlier.upper())  # as copied from an e-mail
    assert code == 0 and "block 2 of 3, so the log still holds everything" in output

    # The state of a backup taken after block 2: rows, blocks and the chain's head.
    tamper("DELETE FROM decisions_decision WHERE seq > %s", (sealed_log[3].seq,))
    tamper("DELETE FROM decisions_decisionblock WHERE number = 3")
    tamper(
        "UPDATE governance_chainhead SET seq = 2, hash = %s WHERE name = %s",
        (earlier, decision_log.CHAIN),
    )
    # The last verification inside the database still remembers three blocks ...
    code, output = verify()
    assert code == 1
    assert "found 3 blocks; the log has 2: blocks were removed from the end" in output
    # ... unless it goes back too, as with a restored backup: then what is left verifies,
    # and only the head recorded outside tells.
    LogVerification.objects.all().delete()
    assert verify()[0] == 0
    code, output = verify("--head", recorded)
    assert code == 1
    assert f"TAMPERED: the head {recorded} recorded earlier is not in the log" in output
    assert "2 blocks, 4 sealed decisions" in output
    with pytest.raises(CommandError, match="64 hexadecimal digits"):
        call_command("verify_decisions", "--head", "not-a-hash")


def test_inserted_decision_is_detected(sealed_log):
    victim = sealed_log[1]
    tamper("UPDATE decisions_decision SET seq = %s WHERE seq = %s", (victim.seq - 1000, victim.seq))
    report = decision_log_verify()
    assert not report.ok and report.first_bad_block == 1


@on_postgres
@pytest.mark.postgres
def test_a_json_column_altered_inside_its_text_is_named(sealed_log):
    # Verification hashes the stored JSON text as written; an edit inside it is caught.
    victim = sealed_log[2]
    tamper(
        "UPDATE decisions_decision SET reasons = "
        'replace(reasons::text, \'"code":"\', \'"code":"X\')::json WHERE seq = %s',
        (victim.seq,),
    )
    report = decision_log_verify()
    assert not report.ok and report.first_bad_row == str(victim.decision_id)
    assert report.first_bad_block == 2


@on_postgres
@pytest.mark.postgres
def test_the_same_values_in_other_json_text_still_verify(sealed_log):
    # Rows whose JSON text is not the canonical form (written while the columns were
    # jsonb, or through the ORM) are checked from their values: the same values verify.
    for column in ("features", "actions", "reasons", "explanation"):
        tamper(f"UPDATE decisions_decision SET {column} = {column}::jsonb::text::json")  # noqa: S608
    with connection.cursor() as cursor:
        cursor.execute("SELECT features::text FROM decisions_decision LIMIT 1")
        assert ": " in cursor.fetchone()[0]  # jsonb's own spacing, not the canonical text
    report = decision_log_verify()
    assert report.ok, report.problems
    assert report.rows == len(sealed_log)


def test_the_daily_task_verifies_the_log_and_logs_tampering_as_an_error(
    sealed_log, settings, caplog
):
    from decisions.tasks import decision_log_verify_task

    entry = settings.CELERY_BEAT_SCHEDULE["verify-decision-log-daily"]
    assert entry["task"] == decision_log_verify_task.name
    intact = decision_log_verify_task()
    assert intact["ok"] and intact["rows"] == len(sealed_log) and intact["blocks"] == 3
    victim = sealed_log[3]
    tamper("UPDATE decisions_decision SET action_id = %s WHERE seq = %s", ("forged", victim.seq))
    with caplog.at_level(logging.ERROR, logger="decisions.tasks"):
        tampered = decision_log_verify_task()
    assert not tampered["ok"] and tampered["first_bad_row"] == str(victim.decision_id)
    assert f"decision {victim.decision_id}" in caplog.text and "verification failed" in caplog.text
    # Both checks are kept for the decision pages, newest first.
    kept = list(LogVerification.objects.values_list("source", "ok", "first_bad_row"))
    assert kept == [("daily", False, str(victim.decision_id)), ("daily", True, "")]
    code, _ = verify()  # the command's check is kept too
    assert code == 1
    assert LogVerification.objects.first().source == "command"


@pytest.mark.django_db(transaction=True)  # the sealer commits from its own connection
@pytest.mark.parametrize("meanwhile", ["seal", "purge"])
def test_what_commits_while_the_log_is_verified_is_not_taken_for_tampering(
    sealed_log, api_client_user, admin_user, settings, monkeypatch, meanwhile
):
    # Beat seals every few seconds and a check of a large log takes minutes: a block
    # sealed, or blocks purged, after the check began must not read as blocks cut from
    # the end or rows removed, and decisions go on being logged meanwhile.
    from decisions import decision_log
    from decisions.retention import decision_log_purge

    settings.DECISION_RETENTION_MONTHS = 0
    reading = decision_log._stored_hashes
    started = []
    failed: list[BaseException] = []

    def elsewhere() -> None:
        try:
            if meanwhile == "seal":
                decision_make(
                    actor=api_client_user,
                    deployment="cross-sell",
                    customer_id="late",
                    features=features(9),
                )
                assert len(decision_blocks_seal(max_rows=2, grace_seconds=0)) == 1
            else:
                assert decision_log_purge(actor=admin_user).blocks == 3
        except BaseException as exc:  # asserted below, in the test's thread
            failed.append(exc)
        finally:
            connection.close()

    def commit_meanwhile(**seq_range):
        if not started:
            started.append(True)
            thread = threading.Thread(target=elsewhere)
            thread.start()
            thread.join(timeout=60)
        yield from reading(**seq_range)

    monkeypatch.setattr(decision_log, "_stored_hashes", commit_meanwhile)
    during = decision_log_verify()
    # The writer did not wait for the check (on SQLite too: WAL, and a DEFERRED read).
    assert started and not failed, failed
    assert during.ok, during.problems
    assert (during.blocks, during.rows, during.purged_blocks) == (3, 6, 0)  # as it began
    after = decision_log_verify()
    assert after.ok, after.problems
    assert after.blocks == (4 if meanwhile == "seal" else 3)


def test_a_log_that_does_not_verify_is_e_mailed_to_the_admins_and_auditors(
    sealed_log, auditor, admin_user, checker, make_user
):
    from django.core import mail

    from decisions.tasks import decision_log_verify_task

    for user, address in ((auditor, "ada@bank.example"), (admin_user, "ola@bank.example"),
                          (checker, "chen@bank.example")):  # fmt: skip
        user.email = address
        user.save(update_fields=["email"])
    gone = make_user("old-admin", "admin")
    gone.email, gone.is_active = "old@bank.example", False
    gone.save(update_fields=["email", "is_active"])

    assert decision_log_verify_task()["ok"] and mail.outbox == []  # intact: no e-mail
    victim = sealed_log[1]
    tamper("UPDATE decisions_decision SET action_id = %s WHERE seq = %s", ("forged", victim.seq))
    decision_log_verify_task()
    [message] = mail.outbox
    assert message.subject == "[Arbiter] The decision log does not verify"
    assert message.to == ["ada@bank.example", "ola@bank.example"]  # not the checker, not gone
    assert "First bad block: 1" in message.body
    assert f"First bad decision: {victim.decision_id}" in message.body
    assert f"- decision {victim.decision_id} (seq {victim.seq}) was altered" in message.body
    code, output = verify()  # the command's check writes too
    assert code == 1 and "E-mailed to 2 administrator(s) and auditor(s)." in output
    assert len(mail.outbox) == 2


def test_a_mail_server_that_fails_costs_a_warning_not_the_check(
    sealed_log, auditor, settings, caplog
):
    import socket

    from decisions.tasks import decision_log_verify_task

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed once the probe is: the server refuses
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", port, 5
    auditor.email = "ada@bank.example"
    auditor.save(update_fields=["email"])
    tamper("UPDATE decisions_decision SET value = 1e9 WHERE seq = %s", (sealed_log[0].seq,))
    with caplog.at_level(logging.WARNING, logger="decisions.tasks"):
        result = decision_log_verify_task()
    assert result["ok"] is False and LogVerification.objects.get().ok is False
    assert "could not e-mail '[Arbiter] The decision log does not verify'" in caplog.text
    assert "decision log verification failed" in caplog.text


def test_unsealed_rows_are_checked_too(sealed_log, cross_sell_deployment, api_client_user):
    fresh = decision_make(
        actor=api_client_user, deployment="cross-sell", customer_id="late", features=features(7)
    ).decision
    tamper("UPDATE decisions_decision SET value = 1e9 WHERE seq = %s", (fresh.seq,))
    report = decision_log_verify()
    assert report.first_bad_row == str(fresh.decision_id)


@on_postgres
@pytest.mark.postgres
@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE decisions_decision SET action_id = 'loan'",
        "DELETE FROM decisions_decision",
        "UPDATE decisions_decisionblock SET row_count = 1",
        "DELETE FROM decisions_decisionblock",
    ],
)
def test_postgres_refuses_changes_to_the_log(sealed_log, sql):
    with pytest.raises(DatabaseError), transaction.atomic():
        run_sql(sql)
    assert decision_log_verify().ok


@on_postgres
@pytest.mark.postgres
def test_the_logs_json_is_json_compressed_with_lz4_and_reads_back_whole(
    cross_sell_deployment, api_client_user
):
    # json, not jsonb: the log is never queried inside, and parsing into jsonb was half of
    # the server's work per row (ADR 0011).
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT attname, attcompression FROM pg_attribute "
            "WHERE attrelid = 'decisions_decision'::regclass AND atttypid = 'json'::regtype"
        )
        methods = dict(cursor.fetchall())
    assert set(methods) == {
        "versions", "features", "actions", "action", "prices", "reasons", "contributions",
        "explanation",
    }  # fmt: skip
    assert set(methods.values()) == {"l"}  # lz4 (this PostgreSQL has it, as Debian's does)
    made = decision_make(
        actor=api_client_user, deployment="cross-sell", customer_id="lz4", features=features(3)
    ).decision
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_column_compression(actions) FROM decisions_decision WHERE seq = %s",
            [made.seq],
        )
        assert cursor.fetchone() == ("lz4",)  # a decision is big enough to be compressed
    stored = Decision.objects.get(pk=made.pk)
    assert stored.actions == made.actions and stored.contributions == made.contributions
    assert stored.content_hash == decision_hash(stored)  # what it reads back still verifies
    assert decision_log_verify().ok


@on_postgres
@pytest.mark.postgres
def test_a_real_time_decision_is_stored_as_the_canonical_json_it_hashed(
    cross_sell_deployment, api_client_user
):
    # Each JSON field is serialised once, for the hash and for its json column.
    from governance.hashing import canonical_json

    made = [
        decision_make(
            actor=api_client_user,
            deployment="cross-sell",
            customer_id=f"t-{i}",
            features=features(i),
        ).decision
        for i in range(20)
    ]
    columns = ["versions", "features", "actions", "action", "prices", "reasons", "contributions",
               "explanation"]  # fmt: skip
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT seq, {', '.join(c + '::text' for c in columns)} "  # noqa: S608
            "FROM decisions_decision ORDER BY seq"
        )
        stored = cursor.fetchall()
    assert [row[0] for row in stored] == [d.seq for d in made]
    for decision, (_, *texts) in zip(made, stored, strict=True):
        for column, text in zip(columns, texts, strict=True):
            assert text.encode() == canonical_json(getattr(decision, column)), column
        reread = Decision.objects.get(pk=decision.pk)
        assert reread.content_hash == decision.content_hash == decision_hash(reread)
    assert decision_log_verify().ok


@on_postgres
@pytest.mark.postgres
def test_a_decisions_statements_are_prepared_once_per_connection(
    cross_sell_deployment, api_client_user
):
    # Planning the key lookup cost more than running it: the three statements every
    # decision runs (key, active deployment, INSERT) are prepared, and stay few.
    from rest_framework.test import APIClient

    from governance.services import api_key_create

    _, key = api_key_create(actor=None, user=api_client_user)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
    for i in range(5):
        body = {"deployment": "cross-sell", "customer_id": f"p-{i}", "features": features(i)}
        assert client.post("/api/v1/decisions/", body, format="json").status_code == 201
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        prepared = [row[0] for row in cursor.fetchall()]
    assert any(s.startswith("SELECT k.") and "governance_apikey" in s for s in prepared)
    assert any("governance_version" in s and "$3" in s for s in prepared)
    assert any(s.startswith('INSERT INTO "decisions_decision"') for s in prepared)
    assert len(prepared) <= 6  # not one per request
    assert Decision.objects.count() == 5


def test_with_prepared_statements_off_decisions_log_through_the_orm_alike(
    cross_sell_deployment, api_client_user, settings
):
    # DATABASE_PREPARED_STATEMENTS=false (a pooler that cannot keep them): same rows.
    settings.DATABASE_PREPARED_STATEMENTS = False
    made = decision_make(
        actor=api_client_user, deployment="cross-sell", customer_id="orm", features=features(4)
    ).decision
    stored = Decision.objects.get(pk=made.pk)
    assert stored.content_hash == made.content_hash == decision_hash(stored)
    assert stored.actions == made.actions and stored.reasons == made.reasons
    assert decision_log_verify().ok


def test_replay_matches_for_a_thousand_random_decisions(
    cross_sell_deployment, api_client_user, auditor
):
    from decisions.services import decision_replay

    customers = synthetic_customers(1000, seed=2026)
    made = []
    for i, row in enumerate(customers.itertuples(index=False)):
        values = {k: (v.item() if hasattr(v, "item") else v) for k, v in row._asdict().items()}
        made.append(
            decision_make(
                actor=api_client_user,
                deployment="cross-sell",
                customer_id=f"r-{i}",
                features=values,
            ).decision
        )
    assert len({d.action_id for d in made}) > 1  # the sample exercises several actions
    for decision in Decision.objects.all():
        replay = decision_replay(actor=auditor, decision=decision)
        assert replay.matches, (decision.decision_id, replay.differences)


def test_a_full_block_is_sealed_without_waiting_for_beat(
    cross_sell_deployment, api_client_user, settings, django_capture_on_commit_callbacks
):
    settings.DECISION_BLOCK_ROWS = 3
    settings.DECISION_SEAL_GRACE_SECONDS = 0
    for i in range(7):
        with django_capture_on_commit_callbacks(execute=True):
            decision_make(
                actor=api_client_user,
                deployment="cross-sell",
                customer_id=f"s-{i}",
                features=features(i),
            )
    report = decision_log_verify()
    assert report.ok
    assert report.blocks >= 1 and report.rows >= 3 and report.unsealed <= 3


@pytest.mark.parametrize("grace", ["1e400", "nan", "99999999999999999999", "-5", "86401"])
def test_seal_decisions_refuses_a_grace_that_is_no_sane_number_of_seconds(
    cross_sell_deployment, api_client_user, grace
):
    decision_make(
        actor=api_client_user, deployment="cross-sell", customer_id="g-1", features=features(1)
    )
    with pytest.raises(CommandError, match=r"^--grace is a number of seconds from 0 to 86400"):
        call_command("seal_decisions", "--grace", grace, stdout=io.StringIO())
    assert not DecisionBlock.objects.exists()
    out = io.StringIO()
    call_command("seal_decisions", "--grace", "0", stdout=out)
    assert out.getvalue().strip() == "Sealed 1 decisions in 1 block(s)."


@pytest.mark.django_db(transaction=True)
def test_numbers_the_database_normalises_still_verify(cross_sell_deployment, api_client_user):
    """jsonb keeps -0.0 as 0.0 and 1e+16 as 10000000000000000: rows holding such numbers
    must verify after a round trip through the database, and changing them is still caught."""
    body = features(3)
    body["utilisation"] = -0.0  # within the schema (>= 0), as a client may send it
    decision = decision_make(
        actor=api_client_user, deployment="cross-sell", customer_id="neg-zero", features=body
    ).decision
    assert str(decision.features["utilisation"]) == "-0.0"
    decision_blocks_seal(grace_seconds=0)
    assert decision_log_verify().ok
    stored = Decision.objects.get(pk=decision.pk)
    from decisions.decision_log import decision_hash

    assert decision_hash(stored) == decision.content_hash
    with transaction.atomic():  # SET LOCAL (skipping the triggers) needs a transaction
        tamper(
            "UPDATE decisions_decision SET features = %s WHERE seq = %s",
            ('{"income": 1e16, "utilisation": 0.0}', decision.seq),
        )
    assert decision_log_verify().first_bad_row == str(decision.decision_id)


@pytest.fixture
def six_blocks(db, cross_sell_deployment, api_client_user):
    made = [
        decision_make(
            actor=api_client_user,
            deployment="cross-sell",
            customer_id=f"r-{i}",
            features=features(i),
        ).decision
        for i in range(6)
    ]
    decision_blocks_seal(max_rows=1, grace_seconds=0)
    return made


def test_the_rolling_daily_check_re_hashes_new_blocks_and_one_slice_of_the_old(six_blocks):
    """With DECISION_LOG_VERIFY_DAYS = 3, on a log whose last check saw 4 blocks: blocks
    5 and 6 (new) and the day's slice are re-hashed; every link is checked."""
    from decisions.decision_log import decision_log_rolling, decision_log_verify_record

    first = decision_log_verify_record(source="daily")  # full: 6 blocks
    assert first.ok and first.skipped_rows == 0
    LogVerification.objects.filter(pk=first.pk).update(
        blocks=4, head_hash=DecisionBlock.objects.get(number=4).hash
    )
    # A row of block 2 altered, its hash left as sealed.
    tamper(
        "UPDATE decisions_decision SET action_id = %s WHERE seq = %s",
        ("forged", six_blocks[1].seq),
    )
    day_one = decision_log_rolling(3, today=1)  # blocks 1 and 4 (n % 3 == 1), and 5, 6
    assert [n for n in range(1, 7) if day_one(n)] == [1, 4, 5, 6]
    missed = decision_log_verify_record(source="daily", rehash=day_one)
    assert missed.ok  # block 2's rows are another day's slice
    assert (missed.rows, missed.skipped_blocks, missed.skipped_rows) == (4, 2, 2)
    day_two = decision_log_rolling(3, today=2)  # within three days, block 2's turn
    caught = decision_log_verify_record(source="daily", rehash=day_two)
    assert not caught.ok and caught.first_bad_block == 2
    assert caught.first_bad_row == str(six_blocks[1].decision_id)


def test_the_rolling_check_still_checks_every_block_and_the_last_recorded_head(six_blocks):
    from decisions.decision_log import _block_hash, _digest, decision_log_verify_record

    decision_log_verify_record(source="daily")  # records block 6's hash
    nothing = lambda number: False  # noqa: E731 (no rows re-hashed at all)
    assert decision_log_verify_record(source="daily", rehash=nothing).ok

    # A block's count changed: its header no longer hashes to its hash.
    tamper("UPDATE decisions_decisionblock SET row_count = 2 WHERE number = 3")
    altered = decision_log_verify_record(source="daily", rehash=nothing)
    assert not altered.ok and altered.problems == ["block 3 was altered"]
    tamper("UPDATE decisions_decisionblock SET row_count = 1 WHERE number = 3")

    # The whole chain rewritten consistently from block 2 (a row, then every digest, link
    # and hash after it, and the chain head): only the hash the last check kept tells.
    victim = six_blocks[1]
    tamper("UPDATE decisions_decision SET action_id = %s WHERE seq = %s", ("forged", victim.seq))
    forged = Decision.objects.get(seq=victim.seq)
    tamper(
        "UPDATE decisions_decision SET content_hash = %s WHERE seq = %s",
        (decision_hash(forged), victim.seq),
    )
    previous = DecisionBlock.objects.get(number=1).hash
    for block in DecisionBlock.objects.filter(number__gte=2).order_by("number"):
        rows = list(
            Decision.objects.filter(seq__gt=block.after_seq, seq__lte=block.last_seq)
            .order_by("seq")
            .values_list("seq", "content_hash")
        )
        block.rows_digest, block.prev_hash = _digest(rows), previous
        block.hash = _block_hash(block)
        tamper(
            "UPDATE decisions_decisionblock SET rows_digest = %s, prev_hash = %s, hash = %s "
            "WHERE number = %s",
            (block.rows_digest, block.prev_hash, block.hash, block.number),
        )
        previous = block.hash
    tamper(
        "UPDATE governance_chainhead SET hash = %s WHERE name = %s",
        (previous, decision_log.CHAIN),
    )
    rewritten = decision_log_verify_record(source="command")  # full, every row re-hashed
    assert not rewritten.ok
    assert rewritten.first_bad_block == 6
    assert "block 6 no longer has the hash the verification of" in rewritten.problems[0]
    assert "the log was rewritten since" in rewritten.problems[0]


def test_the_daily_task_follows_decision_log_verify_days(six_blocks, settings):
    from decisions.tasks import decision_log_verify_task

    assert decision_log_verify_task()["skipped_rows"] == 0  # 1 day: every row
    settings.DECISION_LOG_VERIFY_DAYS = 6
    result = decision_log_verify_task()
    assert result["ok"]
    assert result["skipped_rows"] == 5  # no new block: one slice of six
    assert decision_log_verify_task(source="page")["skipped_rows"] == 0  # Verify now: all
