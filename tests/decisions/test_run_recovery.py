"""Runs whose worker stopped without finishing are started again by beat, or failed.

A worker that dies is redelivered its task by the broker (the task acks late); these are
the cases that redelivery does not cover: a worker that lost the database mid-run (its
task ended, the run stayed ``running``), a broker that lost the message, and a phase
that reports no progress for longer than the heartbeat's staleness (a long solve).
"""

from __future__ import annotations

import time
from contextlib import ExitStack
from datetime import timedelta

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection
from django.db.models import F
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from arbiter.celery import app
from decisions import optimisation
from decisions.demo_setup import demo_load
from decisions.models import Decision, OptimisationRun, RunStatus
from decisions.optimisation import (
    optimisation_run_create,
    optimisation_run_enqueue,
    optimisation_run_execute,
    optimisation_runs_recover,
)
from decisions.tasks import optimisation_run_task, optimisation_runs_recover_task
from tests.decisions.test_database_down import closed_port, database_unreachable
from tests.decisions.test_distributed_runs import BROKER, celery_on, require_broker

on_postgres = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="needs PostgreSQL (set DATABASE_URL); CI runs it"
)


@pytest.fixture
def maker():
    demo_load()
    return get_user_model().objects.get(username="maker")


def queued_run(maker, customers: int = 200) -> OptimisationRun:
    return optimisation_run_create(
        actor=maker, deployment="collections", simulated={"customers": customers}, enqueue=False
    )


def stopped(run: OptimisationRun, *, attempts: int, ago: timedelta) -> None:
    """As a worker leaves a run it stopped running: ``running``, its heartbeat ``ago``."""
    OptimisationRun.objects.filter(pk=run.pk).update(
        status=RunStatus.RUNNING,
        attempts=attempts,
        phase="solving",
        started_at=timezone.now() - ago,
        heartbeat_at=timezone.now() - ago,
    )


@pytest.mark.django_db
def test_beat_sends_again_a_run_whose_worker_stopped_and_leaves_the_others(maker):
    entry = settings.CELERY_BEAT_SCHEDULE["recover-optimisation-runs"]
    assert entry["task"] == optimisation_runs_recover_task.name
    assert entry["schedule"] < settings.OPTIMISATION_HEARTBEAT_STALE_SECONDS

    lost, busy, waiting = queued_run(maker), queued_run(maker), queued_run(maker)
    stopped(lost, attempts=1, ago=timedelta(minutes=10))
    stopped(busy, attempts=1, ago=timedelta(seconds=20))  # another worker is on it

    # Tasks run in-process in the tests: the resent task runs the run to the end.
    assert optimisation_runs_recover_task.delay().get() == {"resent": [lost.pk], "failed": []}

    lost.refresh_from_db()
    assert lost.status == RunStatus.SUCCEEDED
    assert lost.attempts == 2
    assert lost.task_id  # a new task id, which a cancel revokes
    assert Decision.objects.filter(run=lost).count() == 200
    busy.refresh_from_db()
    assert (busy.status, busy.attempts) == (RunStatus.RUNNING, 1)
    waiting.refresh_from_db()
    assert waiting.status == RunStatus.QUEUED
    assert not Decision.objects.filter(run__in=[busy, waiting]).exists()


def sent(run: OptimisationRun, *, queued: timedelta, sent: timedelta) -> None:
    """As a run is left that was queued ``queued`` ago and whose task was last sent
    ``sent`` ago, and that no worker has taken."""
    now = timezone.now()
    OptimisationRun.objects.filter(pk=run.pk).update(
        created_at=now - queued, sent_at=now - sent, task_id="the-last-task"
    )


@pytest.mark.django_db
def test_beat_sends_again_a_queued_run_that_no_worker_took(maker):
    assert settings.OPTIMISATION_QUEUED_RESEND_SECONDS == 600  # the waits below assume it
    lost, recent, backed_off, never_sent = (queued_run(maker) for _ in range(4))
    sent(lost, queued=timedelta(minutes=11), sent=timedelta(minutes=11))
    sent(recent, queued=timedelta(minutes=5), sent=timedelta(minutes=5))
    # Sent again when it had been queued 30 minutes: its next wait is 30 minutes.
    sent(backed_off, queued=timedelta(minutes=50), sent=timedelta(minutes=20))
    # Created by `manage.py optimise`, which runs it in its own process: never sent.
    OptimisationRun.objects.filter(pk=never_sent.pk).update(
        created_at=timezone.now() - timedelta(hours=2)
    )

    # Tasks run in-process in the tests: the resent task runs the run to the end.
    assert optimisation_runs_recover_task.delay().get() == {"resent": [lost.pk], "failed": []}
    lost.refresh_from_db()
    assert (lost.status, lost.attempts) == (RunStatus.SUCCEEDED, 1)
    assert lost.task_id != "the-last-task"
    assert Decision.objects.filter(run=lost).count() == 200
    for run in (recent, backed_off, never_sent):
        run.refresh_from_db()
        assert run.status == RunStatus.QUEUED
        assert not Decision.objects.filter(run=run).exists()
    assert recent.task_id == backed_off.task_id == "the-last-task"

    sent(backed_off, queued=timedelta(minutes=61), sent=timedelta(minutes=31))
    assert optimisation_runs_recover() == {"resent": [backed_off.pk], "failed": []}
    backed_off.refresh_from_db()
    assert backed_off.status == RunStatus.SUCCEEDED


@pytest.mark.django_db
def test_the_wait_between_sends_of_a_queued_run_doubles_up_to_an_hour(maker):
    run = queued_run(maker)
    created = run.created_at
    OptimisationRun.objects.filter(pk=run.pk).update(sent_at=created)  # sent when created
    sends = [0]
    # Beat's checks, a minute apart over five hours; no worker ever takes the run.
    for minute in range(1, 301):
        now = created + timedelta(minutes=minute)
        run.refresh_from_db()
        if optimisation._resend_due(run, now):
            sends.append(minute)
            OptimisationRun.objects.filter(pk=run.pk).update(sent_at=now)
    assert sends == [0, 10, 20, 40, 80, 140, 200, 260]


def take_messages() -> list[dict]:
    """Every message on the default queue, removed from it: what a worker would get."""
    headers = []
    with app.connection_for_read() as connection_, connection_.SimpleQueue("celery") as q:
        while True:
            try:
                message = q.get(block=True, timeout=0.5)
            except q.Empty:
                return headers
            headers.append(message.headers)
            message.ack()


@pytest.mark.django_db
def test_a_queued_run_whose_message_the_broker_lost_is_sent_to_it_again(maker):
    """With a real broker and no worker: the run's message is taken off the queue (as a
    Redis restarted without its append-only file loses it); beat puts a new one there."""
    require_broker()
    run = queued_run(maker)
    with celery_on(BROKER):
        take_messages()  # none of another test's
        optimisation_run_enqueue(run.pk)
        run.refresh_from_db()
        first = run.task_id
        assert [h["id"] for h in take_messages()] == [first]  # now lost
        assert optimisation_runs_recover() == {"resent": [], "failed": []}  # not yet due

        sent(run, queued=timedelta(minutes=11), sent=timedelta(minutes=11))
        assert optimisation_runs_recover() == {"resent": [run.pk], "failed": []}
        run.refresh_from_db()
        (message,) = take_messages()
    assert message["id"] == run.task_id not in (first, "the-last-task")
    assert message["task"] == optimisation_run_task.name
    assert message["argsrepr"] == f"[{run.pk}]"
    assert run.status == RunStatus.QUEUED
    assert timezone.now() - run.sent_at < timedelta(minutes=1)


@pytest.mark.django_db
def test_the_run_page_says_when_no_worker_has_taken_a_queued_run(maker):
    run = queued_run(maker)
    browser = Client()
    browser.force_login(maker)
    api = APIClient()
    api.force_authenticate(maker)
    sent(run, queued=timedelta(minutes=3), sent=timedelta(minutes=3))
    page = browser.get(reverse("ui:run-detail", args=[run.pk])).content.decode()
    assert "No worker has taken this run" not in page
    assert api.get(f"/api/v1/optimisation-runs/{run.pk}/").json()["waiting"] is False

    sent(run, queued=timedelta(minutes=25), sent=timedelta(minutes=4))
    page = browser.get(reverse("ui:run-detail", args=[run.pk])).content.decode()
    assert "No worker has taken this run in the 25\xa0minutes since it was queued" in page
    assert "check the workers" in page
    body = api.get(f"/api/v1/optimisation-runs/{run.pk}/").json()
    assert body["waiting"] is True
    assert body["status"] == "queued" and body["sent_at"]


@pytest.mark.django_db
def test_a_run_that_stopped_max_attempts_times_is_failed_with_a_sentence(maker):
    run = queued_run(maker)
    stopped(run, attempts=settings.OPTIMISATION_MAX_ATTEMPTS, ago=timedelta(minutes=10))
    assert optimisation_runs_recover() == {"resent": [], "failed": [run.pk]}
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED
    assert run.finished_at is not None
    assert f"started {settings.OPTIMISATION_MAX_ATTEMPTS} times" in run.error
    assert "No decision of it was logged" in run.error
    assert not Decision.objects.filter(run=run).exists()
    assert optimisation_runs_recover() == {"resent": [], "failed": []}  # finished: left alone


@pytest.mark.django_db(transaction=True)  # the connection is closed and reopened
def test_a_run_that_loses_the_database_is_started_again_once_it_is_back(maker, caplog):
    run = queued_run(maker, customers=300)
    with ExitStack() as outage:

        def progress(phase: str, percent: float) -> None:
            if phase == "solving" and not outage._exit_callbacks:
                outage.enter_context(database_unreachable())  # the next query fails

        ended = optimisation_run_execute(run.pk, progress=progress, resumable=True)
    assert ended.status == RunStatus.RUNNING  # not failed: the database, not the run
    assert "lost the database" in caplog.text

    run.refresh_from_db()
    assert (run.status, run.attempts, run.phase) == (RunStatus.RUNNING, 1, "solving")
    assert not Decision.objects.filter(run=run).exists()
    assert optimisation_runs_recover() == {"resent": [], "failed": []}  # still fresh

    OptimisationRun.objects.filter(pk=run.pk).update(
        heartbeat_at=timezone.now()
        - timedelta(seconds=settings.OPTIMISATION_HEARTBEAT_STALE_SECONDS + 1)
    )
    assert optimisation_runs_recover() == {"resent": [run.pk], "failed": []}
    run.refresh_from_db()
    assert (run.status, run.attempts) == (RunStatus.SUCCEEDED, 2)
    assert Decision.objects.filter(run=run).count() == 300


@on_postgres
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)  # the heartbeat writes on its own connection
def test_a_phase_without_progress_keeps_its_heartbeat_fresh(maker, settings):
    settings.OPTIMISATION_HEARTBEAT_SECONDS = 0.05
    run = queued_run(maker)
    stopped(run, attempts=1, ago=timedelta(hours=1))
    with optimisation._run_heartbeat(run.pk):
        time.sleep(0.5)  # a long solve: no progress reported
    run.refresh_from_db()
    assert timezone.now() - run.heartbeat_at < timedelta(seconds=5)
    assert optimisation_runs_recover() == {"resent": [], "failed": []}


@pytest.mark.django_db
def test_the_run_page_says_when_a_run_has_stalled(maker):
    run = queued_run(maker)
    browser = Client()
    browser.force_login(maker)
    stopped(run, attempts=1, ago=timedelta(seconds=20))
    assert (
        "No word from this run"
        not in browser.get(reverse("ui:run-detail", args=[run.pk])).content.decode()
    )
    stopped(run, attempts=1, ago=timedelta(minutes=10))
    page = browser.get(reverse("ui:run-detail", args=[run.pk])).content.decode()
    assert "No word from this run's worker since" in page
    assert f"fails it after {settings.OPTIMISATION_MAX_ATTEMPTS} starts" in page
    api = APIClient()
    api.force_authenticate(maker)
    body = api.get(f"/api/v1/optimisation-runs/{run.pk}/").json()
    assert body["stalled"] is True
    assert body["status"] == "running" and body["attempts"] == 1
    assert body["heartbeat_at"]


@pytest.fixture
def queue_down(settings):
    """Redis refusing connections, as while it restarts; the result backend gives up
    reconnecting after one try (its default is 20, over about 20 seconds)."""
    settings.OPTIMISATION_DISTRIBUTED = "on"  # chunks go to the workers through the broker
    settings.OPTIMISATION_CHUNK_CUSTOMERS = 100
    saved = app.conf.result_backend_transport_options
    app.conf.result_backend_transport_options = {"retry_policy": {"max_retries": 1}}
    try:
        with celery_on(f"redis://127.0.0.1:{closed_port()}/0"):
            yield
    finally:
        app.conf.result_backend_transport_options = saved


@pytest.mark.django_db
def test_a_worker_that_loses_the_task_queue_leaves_its_run_for_beat(maker, queue_down, caplog):
    run = queued_run(maker)
    ended = optimisation_run_execute(run.pk, resumable=True)  # as the Celery task runs it
    assert ended.status == RunStatus.RUNNING
    assert "lost the task queue" in caplog.text
    run.refresh_from_db()
    assert (run.status, run.attempts, run.error) == (RunStatus.RUNNING, 1, "")
    assert not Decision.objects.filter(run=run).exists()


@pytest.mark.django_db
def test_a_run_in_the_optimise_command_that_loses_the_task_queue_fails_saying_so(maker, queue_down):
    run = queued_run(maker)
    ended = optimisation_run_execute(run.pk)  # as manage.py optimise runs it
    assert ended.status == RunStatus.FAILED
    assert ended.error.startswith("The run lost the task queue (the Celery broker")
    assert "No decision of it was logged; start it again once that is back." in ended.error
    assert not Decision.objects.filter(run=run).exists()


@pytest.mark.parametrize("log_decisions", [True, False])
@pytest.mark.django_db(transaction=True)  # the takeover commits, as another worker's would
def test_an_attempt_another_worker_took_over_rolls_back_and_leaves_the_run_to_it(
    maker, log_decisions, caplog
):
    run = optimisation_run_create(
        actor=maker,
        deployment="collections",
        simulated={"customers": 300},
        log_decisions=log_decisions,
        enqueue=False,
    )

    def progress(phase: str, percent: float) -> None:
        if phase == "solving":  # meanwhile another worker claims the run: attempt 2
            OptimisationRun.objects.filter(pk=run.pk).update(
                attempts=F("attempts") + 1, heartbeat_at=timezone.now()
            )

    ended = optimisation_run_execute(run.pk, progress=progress)
    assert ended.status == RunStatus.RUNNING
    assert "attempt 1 was superseded by a later one" in caplog.text
    run.refresh_from_db()
    assert (run.status, run.attempts) == (RunStatus.RUNNING, 2)  # the other worker's
    assert run.finished_at is None
    assert not Decision.objects.filter(run=run).exists()
