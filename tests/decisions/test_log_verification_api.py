"""REST of the decision log's verifications: list the checks, ask for one."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from arbiter.celery import app
from decisions.decision_log import decision_blocks_seal
from decisions.models import LogVerification
from tests.decisions.test_broker_down import broker_down  # noqa: F401 (a fixture)
from tests.decisions.test_decision_log import sealed_log  # noqa: F401 (a fixture)

pytestmark = pytest.mark.django_db

URL = "/api/v1/decision-log/verifications/"


def as_user(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def test_an_auditor_asks_for_a_check_and_lists_the_checks(sealed_log, auditor):  # noqa: F811
    client = as_user(auditor)
    assert client.get(URL).json()["results"] == []
    answer = client.post(URL)  # no broker here: the check runs at once
    assert answer.status_code == 201, answer.content
    check = answer.json()
    assert check["ok"] is True and check["problems"] == []
    assert (check["blocks"], check["rows"], check["unsealed"]) == (3, 6, 0)
    assert check["source"] == "api" and check["requested_by"] == auditor.username
    listed = client.get(URL).json()
    assert [c["id"] for c in listed["results"]] == [check["id"]]


def test_a_failed_check_names_the_first_bad_block_and_decision(
    sealed_log,  # noqa: F811
    auditor,
):
    from tests.decisions.test_decision_log import tamper

    victim = sealed_log[4]
    tamper("UPDATE decisions_decision SET value = 1e9 WHERE seq = %s", (victim.seq,))
    check = as_user(auditor).post(URL).json()
    assert check["ok"] is False
    assert check["first_bad_block"] == 3 and check["first_bad_row"] == str(victim.decision_id)
    assert check["problems"] == [f"decision {victim.decision_id} (seq {victim.seq}) was altered"]


def test_only_auditors_checkers_and_admins(
    cross_sell_deployment, api_client_user, maker, checker, admin_user
):
    decision_blocks_seal(grace_seconds=0)
    for user in (api_client_user, maker):
        client = as_user(user)
        assert client.get(URL).status_code == 403
        assert client.post(URL).status_code == 403
    assert not LogVerification.objects.exists()
    for user in (checker, admin_user):
        assert as_user(user).post(URL).status_code == 201
    assert APIClient().get(URL).status_code in (401, 403)


def test_with_the_broker_down_the_answer_is_503(auditor, broker_down):  # noqa: F811
    answer = as_user(auditor).post(URL)
    assert answer.status_code == 503
    assert answer.json()["error"]["code"] == "task_queue_unavailable"
    assert not LogVerification.objects.exists()


@pytest.fixture
def broker_up():
    """The real broker (CI: the local Redis), with no worker on the default queue."""
    from tests.decisions.test_distributed_runs import BROKER, celery_on, require_broker

    require_broker()
    with celery_on(BROKER):
        try:
            yield
        finally:
            with app.connection_for_write() as connection:
                connection.default_channel.queue_purge(app.conf.task_default_queue)


def test_with_a_broker_the_check_is_queued(sealed_log, auditor, broker_up):  # noqa: F811
    answer = as_user(auditor).post(URL)
    assert answer.status_code == 202, answer.content
    body = answer.json()
    assert body["queued"] is True and "queued" in body["detail"]
    assert not LogVerification.objects.exists()  # a worker has not run it (none here)
