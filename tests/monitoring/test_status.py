"""manage.py status: each part of the installation checked for real, each failure named."""

from __future__ import annotations

import io
import json
import uuid
from datetime import timedelta
from pathlib import Path
from unittest import mock

import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import connection
from django.test import override_settings
from django.utils import timezone
from django_celery_beat.models import IntervalSchedule, PeriodicTask
from kombu import Connection

from decisions.decision_log import decision_blocks_seal
from decisions.models import LogVerification, OptimisationRun, RunStatus
from decisions.optimisation import optimisation_run_create
from governance import services
from governance.models import Version
from monitoring import status
from tests.decisions.test_database_down import closed_port
from tests.decisions.test_distributed_runs import (
    BROKER,
    _start_worker,
    _stop,
    _wait_until_answering,
    celery_on,
    require_broker,
)
from tests.decisions.test_optimisation_runs import demo  # noqa: F401 (a fixture)
from tests.monitoring.test_report_smtp import smtp_server  # noqa: F401 (a fixture)

pytestmark = pytest.mark.django_db


def run_status(*args: str) -> tuple[int, str]:
    out = io.StringIO()
    with pytest.raises(SystemExit) as exited:
        call_command("status", *args, stdout=out)
    return exited.value.code, out.getvalue()


def by_name(checks: list[status.Check]) -> dict[str, status.Check]:
    return {check.name: check for check in checks}


def test_the_demo_defaults_work_with_warnings_and_say_which(demo):  # noqa: F811
    code, text = run_status()
    assert code == 1, text
    lines = {line.split()[1]: line for line in text.splitlines()[:-1]}
    if connection.vendor == "sqlite":
        assert lines["database"].startswith("WARN") and "SQLite" in lines["database"]
    else:
        assert lines["database"].startswith("ok") and "every migration applied" in lines["database"]
    assert lines["task"].startswith("WARN") and "No broker" in lines["task"]
    assert lines["artifact"].startswith("ok") and "writable" in lines["artifact"]
    assert lines["deployments"].startswith("ok")
    assert "3 active (collections, cross-sell, onboarding)" in lines["deployments"]
    assert "match their hashes" in lines["deployments"]
    assert lines["decision"].startswith("WARN") and "Never verified" in lines["decision"]
    assert "workers" not in lines and "beat" not in lines  # nothing to check without a broker
    assert text.splitlines()[-1] == "Arbiter is working, with warnings above."

    code, text = run_status("--json")
    body = json.loads(text)
    assert body["state"] == "warning" and code == 1
    assert {c["name"] for c in body["checks"]} >= {"database", "deployments", "API keys"}


def test_a_missing_model_file_fails_naming_the_deployment(demo):  # noqa: F811
    model = Version.objects.get(item__kind="model", item__name="onboarding-pd", number=1)
    path = Path(settings.ARTIFACT_ROOT) / model.artifact_path
    aside = path.with_name(path.name + ".aside")
    path.rename(aside)
    try:
        code, text = run_status()
    finally:
        aside.rename(path)
    assert code == 2, text
    line = next(line for line in text.splitlines() if " deployments " in line)
    assert line.startswith("FAIL")
    assert "onboarding (onboarding-pd v1)" in line and "is missing" in line
    assert "answer 503" in line
    assert text.splitlines()[-1] == "Arbiter is not working: see FAIL above."


def test_the_decision_log_state_is_the_last_verifications(demo):  # noqa: F811
    def verification(ok: bool, hours: float) -> None:
        LogVerification.objects.create(
            started_at=timezone.now() - timedelta(hours=hours),
            seconds=1.0,
            source="daily",
            ok=ok,
            blocks=3,
            rows=300,
            unsealed=0,
            head_hash="0" * 64,
            first_bad_block=None if ok else 2,
        )

    verification(True, hours=2)
    log = by_name(status.status_checks())["decision log"]
    assert (log.state, log.message) == (
        status.OK,
        "Intact when verified 2 h ago (the daily check): 300 sealed decisions.",
    )
    LogVerification.objects.update(started_at=timezone.now() - timedelta(hours=40))
    log = by_name(status.status_checks())["decision log"]
    assert log.state == status.WARNING and "the daily check has not run since" in log.message
    verification(False, hours=1)
    log = by_name(status.status_checks())["decision log"]
    assert log.state == status.FAILING
    assert "found the log altered at block 2" in log.message


def test_decisions_left_unsealed_are_a_warning_then_a_failure(make_decision):
    now = timezone.now()
    assert status._sealing(eager=False) == (status.OK, "Every decision is sealed in a block.")
    for minutes in (8, 3, 0):
        make_decision(at=now - timedelta(minutes=minutes))
    decision_blocks_seal(grace_seconds=0)
    assert status.decision_log_backlog() == (0, None)
    make_decision(at=now - timedelta(minutes=2))
    make_decision(at=now - timedelta(seconds=30))

    state, message = status._sealing(eager=False)
    assert state == status.OK
    assert message.startswith("2 decision(s) not sealed in a block, the oldest 2 min old")
    assert message.endswith("(beat seals every 10 s).")
    later = now + timedelta(minutes=10)
    with mock.patch("django.utils.timezone.now", return_value=later):
        state, message = status._sealing(eager=False)
        assert state == status.WARNING and "the oldest 12 min old" in message
        assert "Is beat running?" in message
        assert status._sealing(eager=True) == (
            status.WARNING,
            "2 decision(s) not sealed in a block, the oldest 12 min old: run python manage.py "
            "seal_decisions (no beat without a broker).",
        )
    with mock.patch("django.utils.timezone.now", return_value=now + timedelta(hours=2)):
        assert status._sealing(eager=False)[0] == status.FAILING
        assert status._sealing(eager=True)[0] == status.WARNING
    # The command seals them, and the check is ok again.
    call_command("seal_decisions", "--grace", "0", stdout=io.StringIO())
    assert by_name(status.status_checks())["sealing"] == status.Check(
        "sealing", status.OK, "Every decision is sealed in a block."
    )


def test_runs_no_worker_took_and_keys_near_expiry_are_warned_of(demo, admin_user):  # noqa: F811
    run = optimisation_run_create(
        actor=demo["maker"], deployment="collections", simulated={"customers": 50}, enqueue=False
    )
    OptimisationRun.objects.filter(pk=run.pk).update(
        created_at=timezone.now() - timedelta(minutes=30), sent_at=timezone.now()
    )
    row, _ = services.api_key_create(actor=admin_user, user=demo["lending-app"], days=7)
    checks = by_name(status.status_checks())
    assert checks["optimisation runs"].state == status.WARNING
    assert f"No worker has taken run(s) {run.pk}" in checks["optimisation runs"].message
    assert checks["API keys"].state == status.WARNING
    assert f"{row.prefix} (lending-app, " in checks["API keys"].message

    OptimisationRun.objects.filter(pk=run.pk).update(status=RunStatus.CANCELLED)
    services.api_key_revoke(actor=admin_user, key=row)
    checks = by_name(status.status_checks())
    assert checks["optimisation runs"].state == status.OK
    assert checks["API keys"].state == status.OK


def test_a_broker_that_does_not_answer_fails_and_skips_the_workers():
    with celery_on(f"redis://127.0.0.1:{closed_port()}/0"):
        checks = by_name(status.status_checks())
    assert checks["task queue"].state == status.FAILING
    assert "does not answer" in checks["task queue"].message
    assert "workers" not in checks


def test_workers_must_take_the_run_queue_and_beat_must_be_running(tmp_path):
    """A real broker and a real worker that takes only chunks (a common mistake)."""
    require_broker()
    chunks = f"arbiter-chunks-status-{uuid.uuid4().hex[:8]}"
    name = f"chunks-only-{uuid.uuid4().hex[:6]}@localhost"
    with open(tmp_path / "worker.log", "w") as log:
        processes = [_start_worker(name, chunks, log)]
        try:
            with celery_on(BROKER), override_settings(OPTIMISATION_CHUNK_QUEUE=chunks):
                _wait_until_answering([name], processes)
                checks = by_name(status.status_checks())
        finally:
            _stop(processes)
    workers = checks["workers"]
    assert workers.state == status.FAILING
    assert "No worker takes the queue 'celery'" in workers.message
    assert f"{chunks}: {name}" in workers.message
    # Beat: judged by when django-celery-beat last recorded a run of a scheduled job.
    assert checks["beat"].state == status.FAILING
    assert "never run a scheduled job" in checks["beat"].message
    every = IntervalSchedule.objects.create(every=10, period=IntervalSchedule.SECONDS)
    task = PeriodicTask.objects.create(
        name="seal-decision-log",
        task="decisions.tasks.decision_blocks_seal_task",
        interval=every,
        last_run_at=timezone.now() - timedelta(minutes=2),
    )
    assert status._beat()[0] == status.OK
    PeriodicTask.objects.filter(pk=task.pk).update(
        last_run_at=timezone.now() - timedelta(minutes=45)
    )
    state, message = status._beat()
    assert state == status.FAILING and "45 min ago" in message and "it has stopped" in message
    with Connection(BROKER) as connection:
        connection.default_channel.queue_purge(chunks)


def test_a_migration_not_applied_fails_naming_it():
    """As after deploying new code without ``migrate`` (the record is rolled back after)."""
    from django.db.migrations.loader import MigrationLoader
    from django.db.migrations.recorder import MigrationRecorder

    graph = MigrationLoader(connection).graph
    (latest,) = [name for app, name in graph.leaf_nodes() if app == "decisions"]
    MigrationRecorder.Migration.objects.filter(app="decisions", name=latest).delete()
    database = by_name(status.status_checks())["database"]
    assert database.state == status.FAILING
    assert f"1 migration(s) not applied (decisions.{latest})" in database.message
    assert "run python manage.py migrate" in database.message


def test_the_api_gives_administrators_the_checks_and_503_when_one_fails(demo):  # noqa: F811
    from rest_framework.test import APIClient

    client = APIClient()
    client.force_authenticate(demo["admin"])
    response = client.get("/api/v1/monitoring/status/")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["state"] == "warning"
    assert {"name": "task queue", "state": "warning"}.items() <= body["checks"][1].items()
    model = Version.objects.get(item__kind="model", item__name="onboarding-pd", number=1)
    path = Path(settings.ARTIFACT_ROOT) / model.artifact_path
    aside = path.with_name(path.name + ".aside")
    path.rename(aside)
    try:
        response = client.get("/api/v1/monitoring/status/")
    finally:
        aside.rename(path)
    assert response.status_code == 503
    assert response.json()["state"] == "failing"
    for someone in ("auditor", "maker", "lending-app"):
        client.force_authenticate(demo[someone])
        assert client.get("/api/v1/monitoring/status/").status_code == 403
    client.force_authenticate(None)
    assert client.get("/api/v1/monitoring/status/").status_code == 401


def test_an_http_monitor_reads_the_status_with_the_monitoring_token(demo, settings):  # noqa: F811
    # Administrators cannot hold API keys, so a monitor could not reach it at all.
    from rest_framework.test import APIClient

    settings.METRICS_TOKEN = "m0nitor-token-for-tests"
    monitor = APIClient()
    monitor.credentials(HTTP_AUTHORIZATION="Bearer m0nitor-token-for-tests")
    response = monitor.get("/api/v1/monitoring/status/")
    assert response.status_code == 200, response.content
    assert response.json()["state"] == "warning"
    monitor.credentials(HTTP_AUTHORIZATION="Bearer not-the-token")
    wrong = monitor.get("/api/v1/monitoring/status/")
    assert wrong.status_code == 401
    assert wrong.json()["error"]["message"] == "That is not the monitoring token."
    settings.METRICS_TOKEN = ""  # no token set: no way in but an administrator's session
    monitor.credentials(HTTP_AUTHORIZATION="Bearer ")
    assert monitor.get("/api/v1/monitoring/status/").status_code == 401


def test_the_status_page_is_for_administrators(demo):  # noqa: F811
    from django.test import Client

    browser = Client()
    browser.force_login(demo["admin"])
    page = browser.get("/status/")
    assert page.status_code == 200
    text = page.content.decode()
    assert "Arbiter is working, with the warnings below." in text
    assert '<th scope="row">Deployments</th><td class="state-ok">ok</td>' in text
    assert "match their hashes" in text
    assert {"label": "Status", "url": "/status/", "current": True} in page.context["nav_links"]
    for someone in ("auditor", "maker", "checker"):
        browser.force_login(demo[someone])
        assert browser.get("/status/").status_code == 403
        labels = [link["label"] for link in browser.get("/").context["nav_links"]]
        assert "Status" not in labels


def test_mail_that_is_not_sent_is_a_warning(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"
    mail = by_name(status.status_checks())["mail"]
    assert mail.state == status.WARNING
    assert mail.message.startswith("Mail is printed to the log, not sent")
    assert "Set EMAIL_URL" in mail.message


def test_a_mail_server_that_answers_is_ok_and_one_that_does_not_fails(
    smtp_server,  # noqa: F811
    settings,
):
    mail = by_name(status.status_checks())["mail"]
    assert (mail.state, mail.message) == (
        status.OK,
        f"The mail server 127.0.0.1:{settings.EMAIL_PORT} answered.",
    )
    assert smtp_server.envelopes == []  # connected and left: nothing sent
    settings.EMAIL_PORT = closed_port()
    mail = by_name(status.status_checks())["mail"]
    assert mail.state == status.FAILING
    assert mail.message.startswith(f"The mail server 127.0.0.1:{settings.EMAIL_PORT} did not")
    assert "Connection refused" in mail.message and "Check EMAIL_URL" in mail.message
    code, text = run_status()
    assert code == 2 and "FAIL  mail" in text
