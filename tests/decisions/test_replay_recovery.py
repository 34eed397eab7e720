"""Beat's recovery of replays: a lost message is sent again, a lost worker is replaced,
and a replay that cannot finish is failed with a reason (``replay_checks_recover``)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from decisions.models import ReplayCheck
from decisions.replays import replay_check_create, replay_check_execute, replay_checks_recover
from decisions.tasks import decision_replay_check_task
from tests.decisions.test_distributed_runs import BROKER, celery_on, require_broker
from tests.decisions.test_log_verification_api import as_user, broker_up  # noqa: F401
from tests.decisions.test_replay_sample import logged  # noqa: F401 (a fixture)
from tests.decisions.test_run_recovery import take_messages

pytestmark = pytest.mark.django_db

URL = "/api/v1/decision-log/replays/"
NOTHING = {"resent": [], "failed": []}


def ago(**kwargs: float):
    return timezone.now() - timedelta(**kwargs)


def test_a_queued_replay_whose_message_the_broker_lost_is_sent_again(
    logged,  # noqa: F811
    auditor,
):
    """A real broker and no worker: the message is taken off the queue (as a Redis
    restarted without its append-only file loses it); beat puts a new one there, then
    waits twice as long before the next."""
    require_broker()
    with celery_on(BROKER):
        take_messages()  # none of another test's
        check_id = as_user(auditor).post(URL, {"size": 5, "seed": 2}, format="json").json()["id"]
        (lost,) = take_messages()
        assert lost["task"] == decision_replay_check_task.name
        assert replay_checks_recover() == NOTHING  # not yet due

        ReplayCheck.objects.filter(pk=check_id).update(
            requested_at=ago(minutes=11), sent_at=ago(minutes=11)
        )
        assert replay_checks_recover() == {"resent": [check_id], "failed": []}
        (message,) = take_messages()
        assert message["task"] == decision_replay_check_task.name
        assert message["argsrepr"] == f"({check_id},)"
        check = ReplayCheck.objects.get(pk=check_id)
        assert check.status == "queued" and timezone.now() - check.sent_at < timedelta(minutes=1)

        # Queued 21 minutes when sent again: the next send waits 21 minutes, not 10.
        ReplayCheck.objects.filter(pk=check_id).update(
            requested_at=ago(minutes=32), sent_at=ago(minutes=11)
        )
        assert replay_checks_recover() == NOTHING
        assert take_messages() == []
    # The message a worker gets replays it, once.
    assert decision_replay_check_task.run(check_id)["status"] == "done"
    assert ReplayCheck.objects.get(pk=check_id).attempts == 1


def test_a_replay_whose_worker_went_silent_is_queued_again_and_the_old_worker_stops(
    logged,  # noqa: F811
    auditor,
    broker_up,  # noqa: F811
):
    check_id = as_user(auditor).post(URL, {"size": 20, "seed": 7}, format="json").json()["id"]
    take_messages()  # the first message: this test is the worker
    seen = []

    def stalls(outcome, sample) -> None:
        """This worker stalls after its first decision for longer than beat waits."""
        seen.append(outcome.decision.seq)
        if len(seen) == 1:
            ReplayCheck.objects.filter(pk=check_id).update(beat_at=ago(minutes=6))
            assert replay_checks_recover() == {"resent": [check_id], "failed": []}

    slow = replay_check_execute(check_id, each=stalls)
    assert len(seen) == 20  # it went on, but wrote nothing once the check was taken back
    assert (slow.status, slow.attempts, slow.identical, slow.finished_at) == (
        "queued",
        1,
        0,
        None,
    )
    (message,) = take_messages()
    assert message["argsrepr"] == f"({check_id},)"
    assert decision_replay_check_task.run(check_id) == {
        "status": "done",
        "replayed": 20,
        "ok": True,
    }
    check = ReplayCheck.objects.get(pk=check_id)
    assert (check.attempts, check.identical) == (2, 20)
    assert replay_checks_recover() == NOTHING
    # The auditor sees that it was started again, on the API and the page.
    assert as_user(auditor).get(f"{URL}{check_id}/").json()["attempts"] == 2
    browser = Client()
    browser.force_login(auditor)
    page = browser.get(f"/decisions/replays/{check_id}/").content.decode()
    assert "All 20 decisions replayed identically" in page
    assert "2 times: a worker went silent" in page


def test_a_replay_that_cannot_finish_is_failed_with_the_reason(
    logged,  # noqa: F811
    auditor,
    broker_up,  # noqa: F811
):
    # Started by manage.py replay_decisions (never sent to a worker), whose process died.
    by_hand = replay_check_create(actor=auditor, size=5)
    ReplayCheck.objects.filter(pk=by_hand.pk).update(status="running", beat_at=ago(minutes=6))
    # Sent to workers, and their worker died on each of three attempts.
    sent = replay_check_create(actor=auditor, size=5)
    ReplayCheck.objects.filter(pk=sent.pk).update(
        status="running", sent_at=ago(minutes=30), attempts=3, beat_at=ago(minutes=6)
    )
    # Heard from four minutes ago: still going.
    going = replay_check_create(actor=auditor, size=5)
    ReplayCheck.objects.filter(pk=going.pk).update(
        status="running", sent_at=ago(minutes=5), attempts=1, beat_at=ago(minutes=4)
    )
    assert replay_checks_recover() == {"resent": [], "failed": [by_hand.pk, sent.pk]}
    by_hand.refresh_from_db()
    sent.refresh_from_db()
    assert by_hand.status == "failed" and "stopped without finishing" in by_hand.error
    assert sent.status == "failed" and "started 3 times" in sent.error
    assert by_hand.finished_at is not None and sent.finished_at is not None
    assert ReplayCheck.objects.get(pk=going.pk).status == "running"
    # A failed check is not started again by a late message.
    assert replay_check_execute(sent.pk).status == "failed"
    assert take_messages() == []
