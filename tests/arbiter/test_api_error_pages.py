"""Under /api/ even a URL no route matches, or a bug, answers in the common error body."""

from __future__ import annotations

import pytest
from django.test import Client
from rest_framework.test import APIClient

from decisions import apis

pytestmark = pytest.mark.django_db


@pytest.fixture
def api(api_client_user) -> APIClient:
    client = APIClient()
    client.force_authenticate(api_client_user)
    return client


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/deployments/\x00/",  # PostgreSQL refuses NUL in text: this was a 500
        "/api/v1/deployments/Not%20A%20Name/",
        "/api/v1/registry/model/bad\x01name/versions/",
        "/api/v1/no-such-endpoint/",
    ],
)
def test_a_url_the_api_does_not_have_is_a_json_404(api, path):
    response = api.get(path)
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    error = response.json()["error"]
    assert error["code"] == "not_found"
    assert error["message"].startswith("There is no API endpoint at /api/v1/")


def test_a_page_the_site_does_not_have_is_still_a_page(checker):
    browser = Client()
    browser.force_login(checker)
    response = browser.get("/registry/model/\x00/v1/")
    assert response.status_code == 404
    assert "text/html" in response["Content-Type"]


def test_an_uncaught_error_in_the_api_is_a_json_500(api, monkeypatch, caplog):
    def broken(self, request, name):
        raise RuntimeError("a bug")

    monkeypatch.setattr(apis.DeploymentDetailApi, "get", broken)
    api.raise_request_exception = False
    response = api.get("/api/v1/deployments/cross-sell/")
    assert response.status_code == 500
    assert response["Content-Type"] == "application/json"
    error = response.json()["error"]
    assert error["code"] == "server_error"
    assert "has been logged" in error["message"]
    assert "a bug" not in response.content.decode()  # no internals to the client
    assert "a bug" in caplog.text  # but the log has them
