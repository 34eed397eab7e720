"""Under /api/ even a URL no route matches, a request Django refuses before any view, or
a bug, answers in the common error body."""

from __future__ import annotations

import pytest
from django.test import Client, override_settings
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


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("post", "/api/v1/decisions"),
        ("get", "/api/v1/decisions"),
        ("patch", "/api/v1/registry/note/house-rules/versions/1"),
    ],
)
def test_a_path_without_its_slash_is_a_404_naming_it_not_a_redirect(api, method, path):
    # A 301 would make a client's library send the POST again as a GET: a list back,
    # no decision and no error. Django's own APPEND_SLASH still serves the pages.
    response = getattr(api, method)(path, {}, format="json")
    assert response.status_code == 404
    message = response.json()["error"]["message"]
    assert (
        message == f"There is no API endpoint at {path}. The endpoint is {path}/ (with the slash)."
    )
    assert "with the slash" not in api.get("/api/v1/no-such-thing").json()["error"]["message"]


@override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=10_000)
def test_a_body_over_the_server_limit_is_a_json_400(api):
    response = api.post("/api/v1/outcomes/", {"outcomes": [{"note": "x" * 20_000}]}, format="json")
    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    assert response.json()["error"] == {
        "code": "body_too_large",
        "message": "The request body is larger than 10000 bytes.",
        "details": {"body": ["at most 10000 bytes"]},
    }


def test_too_many_query_parameters_are_a_json_400(api):
    query = "&".join(f"a{n}=1" for n in range(1_200))
    response = api.get(f"/api/v1/decisions/?{query}")
    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    error = response.json()["error"]
    assert error["code"] == "too_many_fields"
    assert error["message"] == "The request has more than 1000 query parameters or form fields."


def test_a_content_length_that_is_not_a_number_is_a_400_not_an_empty_body(api):
    response = api.generic(
        "POST",
        "/api/v1/decisions/",
        b'{"deployment": "x"}',
        "application/json",
        CONTENT_LENGTH="abc",
    )
    assert response.status_code == 400
    assert response.json()["error"]["details"] == {
        "Content-Length": ["must be a whole number of bytes"]
    }


@override_settings(DEBUG=True)
@pytest.mark.parametrize("path", ["/api/v1/no-such-endpoint/", "/api/v1/decisions"])
def test_under_debug_too_a_url_the_api_does_not_have_is_a_json_404(api, path):
    # The demo runs with DEBUG on, where Django answers with its HTML page instead.
    response = api.get(path)
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json()["error"]["message"].startswith(f"There is no API endpoint at {path}.")
    page = Client().get("/no-such-page/")
    assert page.status_code == 404 and "text/html" in page["Content-Type"]


def test_the_pages_still_add_the_slash(checker):
    browser = Client()
    browser.force_login(checker)
    assert browser.get("/reviews")["Location"] == "/reviews/"


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
