"""Replays of a random sample asked for over the API and on the decision pages."""

from __future__ import annotations

import logging
import re
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from decisions.models import ReplayCheck
from decisions.replays import replay_check_execute
from decisions.tasks import decision_replay_check_task, decision_replay_daily_task
from tests.decisions.test_broker_down import broker_down  # noqa: F401 (a fixture)
from tests.decisions.test_decision_log import tamper
from tests.decisions.test_log_verification_api import as_user, broker_up  # noqa: F401
from tests.decisions.test_optimisation_runs import demo, run_now  # noqa: F401 (demo: a fixture)
from tests.decisions.test_replay_sample import logged  # noqa: F401 (a fixture)

pytestmark = pytest.mark.django_db

URL = "/api/v1/decision-log/replays/"


def test_an_auditor_replays_a_sample_and_reads_it_back(logged, auditor):  # noqa: F811
    client = as_user(auditor)
    answer = client.post(
        URL, {"size": 10, "seed": 3, "deployment": "cross-sell"}, format="json"
    )  # no broker here: the replay runs at once
    assert answer.status_code == 202, answer.content
    check = answer.json()
    assert check["status"] == "done" and check["ok"] is True
    assert (check["size"], check["seed"], check["population"]) == (10, 3, 40)
    assert (check["replayed"], check["identical"], check["differs"]) == (10, 10, 0)
    assert check["through_seq"] == logged[-1].seq and check["findings"] == []
    assert check["filters"] == {"deployment": "cross-sell"}
    assert check["requested_by"] == auditor.username
    assert client.get(f"{URL}{check['id']}/").json() == check
    assert [c["id"] for c in client.get(URL).json()["results"]] == [check["id"]]
    # Without a seed one is drawn and returned, so the sample can be drawn again.
    fresh = client.post(URL, {"size": 5, "customer_id": "c-4"}, format="json").json()
    assert isinstance(fresh["seed"], int) and fresh["population"] == 2 and fresh["replayed"] == 2


def test_a_decision_that_differs_is_named_and_logged_as_an_error(
    logged,  # noqa: F811
    auditor,
    caplog,
):
    victim = logged[9]
    tamper("UPDATE decisions_decision SET value = value + 1 WHERE seq = %s", (victim.seq,))
    with caplog.at_level(logging.ERROR, logger="decisions.replays"):
        check = as_user(auditor).post(URL, {"size": 40}, format="json").json()
    assert check["ok"] is False and (check["identical"], check["differs"]) == (39, 1)
    assert check["findings"] == [
        {
            "decision_id": str(victim.decision_id),
            "seq": victim.seq,
            "result": "differs",
            "fields": ["value"],
            "message": "",
        }
    ]
    assert f"replay check {check['id']}: 1 of 40 decisions did not replay identically" in (
        caplog.text
    )


def test_bad_requests_get_field_level_400s_and_create_nothing(logged, auditor):  # noqa: F811
    client = as_user(auditor)
    for body, field in (
        ({"size": 0}, "size"),
        ({"size": 10_001}, "size"),
        ({"seed": -1}, "seed"),
        ({"since": "yesterday"}, "since"),
        ({"since": "2026-07-02T00:00Z", "until": "2026-07-01T00:00Z"}, "until"),
        ({"run": 999}, "run"),
        ({"deployment": "nope"}, "filters"),
        ({"colour": "red"}, "colour"),
    ):
        answer = client.post(URL, body, format="json")
        assert answer.status_code == 400, (body, answer.content)
        assert field in answer.json()["error"]["details"], (body, answer.json())
    assert not ReplayCheck.objects.exists()
    assert client.get(f"{URL}999/").status_code == 404


def test_only_auditors_checkers_and_admins(
    logged,  # noqa: F811
    api_client_user,
    maker,
    checker,
    admin_user,
):
    for user in (api_client_user, maker):
        client = as_user(user)
        assert client.get(URL).status_code == 403
        assert client.post(URL, {"size": 1}, format="json").status_code == 403
    assert not ReplayCheck.objects.exists()
    for user in (checker, admin_user):
        assert as_user(user).post(URL, {"size": 1}, format="json").status_code == 202
    assert APIClient().get(URL).status_code == 401


def test_with_the_broker_down_the_answer_is_503_and_the_check_says_so(
    logged,  # noqa: F811
    auditor,
    broker_down,  # noqa: F811
):
    answer = as_user(auditor).post(URL, {"size": 5}, format="json")
    assert answer.status_code == 503
    assert answer.json()["error"]["code"] == "task_queue_unavailable"
    check = ReplayCheck.objects.get()
    assert check.status == ReplayCheck.Status.FAILED and "did not answer" in check.error


def test_with_a_broker_a_worker_runs_it_and_a_lost_worker_starts_it_again(
    logged,  # noqa: F811
    auditor,
    broker_up,  # noqa: F811
):
    answer = as_user(auditor).post(URL, {"size": 8, "seed": 11}, format="json")
    assert answer.status_code == 202 and answer.json()["status"] == "queued"
    check_id = answer.json()["id"]
    assert decision_replay_check_task.run(check_id) == {"status": "done", "replayed": 8, "ok": True}
    done = ReplayCheck.objects.get(pk=check_id)
    assert done.attempts == 1 and done.sent_at is not None
    # A finished check is not redone.
    assert replay_check_execute(check_id).finished_at == done.finished_at
    # One a worker is on (heard from lately) is left to it: a message delivered twice
    # replays nothing twice.
    ReplayCheck.objects.filter(pk=check_id).update(
        status="running", identical=3, beat_at=timezone.now()
    )
    left = replay_check_execute(check_id)
    assert (left.status, left.identical, left.attempts) == ("running", 3, 1)
    # One whose worker went silent starts again, from the same seed.
    ReplayCheck.objects.filter(pk=check_id).update(beat_at=timezone.now() - timedelta(minutes=6))
    again = replay_check_execute(check_id)
    assert (again.status, again.identical, again.replayed, again.attempts) == ("done", 8, 8, 2)


def test_the_decision_page_starts_one_and_shows_what_it_found(logged, auditor):  # noqa: F811
    victim = logged[0]
    tamper("UPDATE decisions_decision SET value = value + 1 WHERE seq = %s", (victim.seq,))
    page = Client()
    page.force_login(auditor)
    assert "Replay a sample" in page.get("/decisions/").content.decode()
    started = page.post(
        "/decisions/replays/", {"size": "40", "deployment": "cross-sell", "seed": ""}
    )
    assert started.status_code == 302
    shown = page.get(started["Location"]).content.decode()
    assert "1 of 40 decisions did not replay identically" in shown
    assert f"/decisions/{victim.decision_id}/" in shown and "differs in value" in shown
    listed = page.get("/decisions/").content.decode()
    assert re.search(r"Replay \d+</a>, asked by .*1 of 40 not identical", listed)

    refused = page.post(
        "/decisions/replays/",
        {"size": "0", "since": "2026-07-02", "until": "2026-07-01"},
        follow=True,
    ).content.decode()
    assert "The replay was not started." in refused
    assert "Decisions to draw: Ensure this value is greater than or equal to 1." in refused
    assert "The last day comes before the first." in refused
    nothing = page.post(
        "/decisions/replays/",
        {"size": "5", "since": "2020-01-01", "until": "2020-01-01"},
        follow=True,
    ).content.decode()
    assert "No logged decision matches these filters" in nothing
    no_run = page.post("/decisions/replays/", {"size": "5", "run": "999"}, follow=True)
    assert "The replay was not started. run: there is no optimisation run 999." in (
        no_run.content.decode()
    )
    assert ReplayCheck.objects.count() == 1


def test_a_run_page_replays_a_sample_of_that_runs_decisions(demo):  # noqa: F811
    auditor, maker = demo["auditor"], demo["maker"]
    run = run_now(maker, deployment="cross-sell", simulated={"customers": 60, "seed": 2})
    page = Client()
    page.force_login(auditor)
    assert "Replay 1,000 of its decisions" in page.get(f"/optimisation/{run.pk}/").content.decode()
    started = page.post("/decisions/replays/", {"run": str(run.pk), "size": "1000"})
    check = ReplayCheck.objects.get()
    assert started["Location"] == f"/decisions/replays/{check.pk}/"
    assert check.filters == {"run": run.pk}
    assert (check.population, check.identical, check.ok) == (60, 60, True)
    shown = page.get(started["Location"]).content.decode()
    assert f"optimisation run {run.pk}</a>: 60 decisions" in shown
    assert "all of them (fewer than the 1000 asked for)" in shown
    page.force_login(maker)  # makers read runs but do not replay
    assert "Replay 1,000" not in page.get(f"/optimisation/{run.pk}/").content.decode()


def test_beat_replays_a_daily_sample_and_a_difference_is_mailed_and_fails_the_status(
    logged,  # noqa: F811
    auditor,
    admin_user,
    settings,
    caplog,
):
    from django.conf import settings as conf
    from django.core import mail

    from arbiter.metrics import DatabaseCollector
    from monitoring import status

    assert "decisions.tasks.decision_replay_daily_task" in {
        entry["task"] for entry in conf.CELERY_BEAT_SCHEDULE.values()
    }
    auditor.email = "ada@bank.example"
    auditor.save(update_fields=["email"])
    settings.DECISION_REPLAY_DAILY_SAMPLE = 12
    answer = decision_replay_daily_task()
    check = ReplayCheck.objects.get(pk=answer["id"])
    assert answer == {"id": check.pk, "status": "done", "replayed": 12, "ok": True}
    assert check.requested_by is None and check.filters == {} and check.population == 40
    assert mail.outbox == []
    replay = {c.name: c for c in status.status_checks()}["replays"]
    assert replay.state == status.OK and "(the daily sample): all 12 decisions identical" in (
        replay.message
    )
    page = Client()
    page.force_login(auditor)
    assert (
        "beat's daily sample of the whole log"
        in page.get(f"/decisions/replays/{check.pk}/").content.decode()
    )

    settings.DECISION_REPLAY_DAILY_SAMPLE = 40  # every decision, so the altered one is drawn
    victim = logged[5]
    tamper("UPDATE decisions_decision SET value = value + 1 WHERE seq = %s", (victim.seq,))
    with caplog.at_level(logging.ERROR, logger="decisions.replays"):
        assert decision_replay_daily_task()["ok"] is False
    [message] = mail.outbox
    assert message.subject == "[Arbiter] Logged decisions do not replay" and message.to == [
        "ada@bank.example"
    ]
    assert f"- {victim.decision_id} (seq {victim.seq}): differs in value" in message.body
    replay = {c.name: c for c in status.status_checks()}["replays"]
    assert replay.state == status.FAILING and "found 1 of 40 decisions not identical" in (
        replay.message
    )
    gauges = {m.name: m.samples[0].value for m in DatabaseCollector().collect() if m.samples}
    assert gauges["arbiter_decision_replay_ok"] == 0

    settings.DECISION_REPLAY_DAILY_SAMPLE = 0
    assert decision_replay_daily_task() is None


def test_a_replay_no_worker_finished_is_a_warning(logged, auditor, broker_up):  # noqa: F811
    from monitoring import status

    check_id = as_user(auditor).post(URL, {"size": 3}, format="json").json()["id"]
    replay = {c.name: c for c in status.status_checks()}["replays"]
    assert replay.state == status.OK  # just asked for
    ReplayCheck.objects.filter(pk=check_id).update(
        requested_at=timezone.now() - timedelta(minutes=45)
    )
    replay = {c.name: c for c in status.status_checks()}["replays"]
    assert replay.state == status.WARNING
    assert replay.message.startswith(f"Replay(s) {check_id} not finished: queued more than 30")
    # Taken by a worker that has not reported for over five minutes.
    ReplayCheck.objects.filter(pk=check_id).update(
        status="running", beat_at=timezone.now() - timedelta(minutes=2)
    )
    assert {c.name: c for c in status.status_checks()}["replays"].state == status.OK
    ReplayCheck.objects.filter(pk=check_id).update(beat_at=timezone.now() - timedelta(minutes=6))
    replay = {c.name: c for c in status.status_checks()}["replays"]
    assert replay.state == status.WARNING and "worker silent for over 5 min" in replay.message
