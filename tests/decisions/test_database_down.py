"""A database that cannot be reached: 503 with a sentence everywhere, never a 500 (and a
deployment whose model file is gone: 503 too, the server's fault, not the client's).

The database here is really unreachable: the connection's settings point at a port
nothing listens on (PostgreSQL: connection refused, as while the server restarts) or at a
SQLite file in a folder that does not exist. Nothing is mocked; the requests and the
command go through Django, DRF and the driver as in production.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection
from django.test import Client
from rest_framework.test import APIClient

from decisions import runtime
from decisions.models import Decision
from governance.models import Version
from governance.services import api_key_create
from tests.decisions.test_decision_api import customer, decide

ROOT = Path(__file__).resolve().parents[2]


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # free once closed: connecting is refused


@contextmanager
def database_unreachable() -> Iterator[None]:
    """The default connection points at a database that cannot be opened, then back."""
    saved = dict(connection.settings_dict)
    connection.close()
    if connection.vendor == "postgresql":
        connection.settings_dict.update(HOST="127.0.0.1", PORT=str(closed_port()))
    else:
        connection.settings_dict["NAME"] = str(ROOT / "no-such-folder" / "arbiter.sqlite3")
    try:
        yield
    finally:
        connection.close()
        connection.settings_dict.clear()
        connection.settings_dict.update(saved)


def api_key_client(user) -> APIClient:
    _, key = api_key_create(actor=None, user=user)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
    return client


@pytest.mark.django_db(transaction=True)  # the connection is closed and reopened
def test_a_decision_asked_for_while_the_database_is_down_is_503_and_none_is_logged(
    cross_sell_deployment, api_client_user, caplog
):
    client = api_key_client(api_client_user)
    assert decide(client, customer(0), customer_id="before").status_code == 201
    with caplog.at_level(logging.ERROR, logger="arbiter.database"), database_unreachable():
        response = decide(client, customer(1), customer_id="during")
        listing = client.get("/api/v1/decisions/")
    for answer in (response, listing):
        assert answer.status_code == 503, answer.content
        assert answer["Content-Type"] == "application/json"
        error = answer.json()["error"]
        assert error["code"] == "database_unavailable"
        assert "database could not be reached" in error["message"]
    assert "database unavailable while serving POST /api/v1/decisions/" in caplog.text
    # Back up: the same client is served again, and the failed request left nothing.
    assert decide(client, customer(2), customer_id="after").status_code == 201
    assert sorted(Decision.objects.values_list("customer_id", flat=True)) == ["after", "before"]


@pytest.mark.django_db(transaction=True)
def test_a_reviewer_page_while_the_database_is_down_says_so_with_503(checker):
    browser = Client()
    browser.force_login(checker)
    assert browser.get("/decisions/").status_code == 200
    with database_unreachable():
        page = browser.get("/decisions/")
        login = browser.post("/accounts/login/", {"username": "x", "password": "y"})
    assert page.status_code == 503
    assert "text/html" in page["Content-Type"]
    text = page.content.decode()
    assert "The service is unavailable" in text
    assert "database could not be reached" in text
    # The login form checks a password against the database too.
    assert login.status_code == 503
    assert browser.get("/decisions/").status_code == 200


def test_a_command_while_the_database_is_down_exits_1_with_a_sentence():
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "arbiter.settings.local",
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:{closed_port()}/arbiter",
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "verify_decisions"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert result.stderr.startswith("verify_decisions stopped: the database failed (")
    assert "Connection refused" in result.stderr
    assert "DATABASE_URL" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.django_db
def test_a_deployment_whose_model_file_is_gone_answers_503_and_logs_nothing(
    cross_sell_deployment, api_client_user, caplog
):
    client = api_key_client(api_client_user)
    model = Version.objects.get(item__kind="model", status="approved")
    stored = Path(settings.ARTIFACT_ROOT) / model.artifact_path
    aside = stored.with_name(stored.name + ".aside")
    runtime.clear_caches()  # a worker that starts now, or the first to need the model
    stored.rename(aside)
    try:
        with caplog.at_level(logging.ERROR, logger="decisions.services"):
            response = decide(client, customer(0), customer_id="gone")
    finally:
        aside.rename(stored)
    assert response.status_code == 503, response.content
    error = response.json()["error"]
    assert error["code"] == "deployment_unavailable"
    assert "a model file it needs is missing" in error["message"]
    assert model.artifact_path not in error["message"]  # the file is named in the log
    assert f"cannot decide: The artifact {model.artifact_path} is missing" in caplog.text
    assert not Decision.objects.exists()
    runtime.clear_caches()
    assert decide(client, customer(0), customer_id="back").status_code == 201
