"""When the Celery broker is down: decisions are still made, runs fail cleanly with 503.

The broker here is a Redis URL on a port nothing listens on (connection refused, as while
Redis restarts), and the result backend the same, so a task that asked it for a result
would hang for Celery's reconnect retries before failing.
"""

from __future__ import annotations

import logging
import threading

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from decisions.models import Decision, DecisionBlock, OptimisationRun, RunStatus
from decisions.tasks import decision_blocks_seal_request
from tests.decisions.test_database_down import closed_port
from tests.decisions.test_decision_api import customer, decide
from tests.decisions.test_distributed_runs import celery_on
from tests.decisions.test_optimisation_api import as_user, start, users  # noqa: F401 (fixture)


@pytest.fixture
def broker_down():
    url = f"redis://127.0.0.1:{closed_port()}/0"
    with celery_on(url):
        yield url


def _seal_requests() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "arbiter-seal-request"]


def test_a_seal_request_the_broker_refuses_is_a_warning(broker_down, caplog):
    with caplog.at_level(logging.WARNING, logger="decisions.tasks"):
        assert decision_blocks_seal_request() is False
    assert "could not queue sealing of the decision log" in caplog.text
    assert "beat will seal it" in caplog.text


@pytest.mark.django_db(transaction=True)  # autocommit: the seal is asked for in the request
def test_a_full_block_with_the_broker_down_still_gets_its_decision(
    cross_sell_deployment, api_client_user, broker_down, settings, caplog
):
    settings.DECISION_BLOCK_ROWS = 1  # every decision fills a block and asks for a seal
    client = APIClient()
    client.force_authenticate(api_client_user)
    with caplog.at_level(logging.WARNING, logger="decisions.tasks"):
        responses = [decide(client, customer(i), customer_id=f"c-{i}") for i in range(2)]
        for thread in _seal_requests():
            thread.join(timeout=60)
    assert [r.status_code for r in responses] == [201, 201], responses[0].content
    assert sorted(Decision.objects.values_list("customer_id", flat=True)) == ["c-0", "c-1"]
    assert caplog.text.count("could not queue sealing") == 2
    assert not DecisionBlock.objects.exists()  # nothing sealed them; beat will


@pytest.mark.django_db(transaction=True)
def test_an_in_process_seal_that_fails_does_not_fail_the_decision(
    cross_sell_deployment, api_client_user, settings, monkeypatch, caplog
):
    """Without a broker the seal runs in the request, after the row is committed."""
    settings.DECISION_BLOCK_ROWS = 1

    def refuse(**kwargs):
        raise RuntimeError("the block chain head is locked")

    monkeypatch.setattr("decisions.tasks.decision_blocks_seal", refuse)
    client = APIClient()
    client.force_authenticate(api_client_user)
    with caplog.at_level(logging.ERROR, logger="decisions.services"):
        response = decide(client, customer(0))
    assert response.status_code == 201, response.content
    assert Decision.objects.filter(decision_id=response.json()["id"]).exists()
    assert "sealing the decision log in-process failed" in caplog.text


@pytest.mark.django_db(transaction=True)  # the run is queued when its transaction commits
def test_a_run_the_broker_does_not_take_fails_with_503(users, broker_down):  # noqa: F811
    maker = as_user(users["maker"])
    response = start(maker, deployment="collections", simulated={"customers": 300, "seed": 3})
    assert response.status_code == 503, response.content
    error = response.json()["error"]
    assert error["code"] == "task_queue_unavailable"
    run = OptimisationRun.objects.get()
    assert f"Optimisation run {run.pk} was not started" in error["message"]
    # Not left "queued" with no task behind it: failed, saying why, and nothing logged.
    assert run.status == RunStatus.FAILED and run.finished_at is not None
    assert "the task queue (the Celery broker) did not answer" in run.error
    shown = maker.get(f"/api/v1/optimisation-runs/{run.pk}/").json()
    assert shown["status"] == "failed" and shown["error"] == run.error
    assert not Decision.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_optimise_queue_with_the_broker_down_exits_with_a_sentence(users, broker_down):  # noqa: F811
    with pytest.raises(CommandError, match=r"did not answer\. Start the run again"):
        call_command(
            "optimise", "--deployment", "collections", "--simulated", "300", "--user", "maker",
            "--queue",
        )  # fmt: skip
    assert OptimisationRun.objects.get().status == RunStatus.FAILED


@pytest.mark.django_db(transaction=True)
def test_the_ui_says_a_run_was_not_started_when_the_broker_is_down(users, broker_down):  # noqa: F811
    client = Client()
    client.force_login(users["maker"])
    page = client.post(
        reverse("ui:run-start"), {"deployment": "collections", "customers": "300"}, follow=True
    )
    assert page.status_code == 200
    run = OptimisationRun.objects.get()
    shown = [str(m) for m in page.context["messages"]]
    assert shown == [run.error] and "was not started" in run.error
    assert run.status == RunStatus.FAILED


@pytest.mark.django_db
def test_cancelling_a_queued_run_with_the_broker_down_still_cancels_it(
    users,  # noqa: F811
    broker_down,
    caplog,
):
    maker = as_user(users["maker"])
    queued = start(maker, deployment="collections", simulated={"customers": 50}).json()
    # As if the broker had taken it before it went down (here, in a test transaction,
    # the on-commit hand-over never runs).
    OptimisationRun.objects.filter(pk=queued["id"]).update(task_id="f" * 32)
    with caplog.at_level(logging.WARNING, logger="decisions.optimisation"):
        response = maker.post(f"/api/v1/optimisation-runs/{queued['id']}/cancel/")
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "cancelled"
    assert OptimisationRun.objects.get(pk=queued["id"]).status == RunStatus.CANCELLED
    assert "could not revoke the task of cancelled run" in caplog.text


@pytest.mark.django_db
def test_verify_now_with_the_broker_down_says_the_log_was_not_checked(auditor, broker_down):
    from decisions.models import LogVerification

    client = Client()
    client.force_login(auditor)
    page = client.post(reverse("ui:decision-log-verify"), follow=True)
    shown = [str(m) for m in page.context["messages"]]
    assert len(shown) == 1 and shown[0].startswith("The decision log was not checked")
    assert "run manage.py verify_decisions" in shown[0]
    assert not LogVerification.objects.exists()
