"""Paging parameters and bodies the API cannot take are field-level 400s and 415s, never
a quiet default or a 404 that reads as a missing list."""

from __future__ import annotations

import base64

import pytest

from governance.roles import Role
from tests.decisions.test_log_verification_api import as_user
from tests.decisions.test_replay_sample import logged  # noqa: F401 (a fixture: 40 decisions)
from tests.governance.test_apis import assert_error
from tests.ui.conftest import (  # noqa: F401 (the fixtures logged needs)
    approved_model,
    cross_sell_deployment,
    register_model,
    trained_model,
)

pytestmark = pytest.mark.django_db


def test_a_cursor_list_pages_and_refuses_a_bad_cursor_or_page_size(logged, auditor):  # noqa: F811
    client = as_user(auditor)
    first = client.get("/api/v1/decisions/", {"page_size": 30}).json()
    newest = [str(d.decision_id) for d in reversed(logged)]
    assert [d["id"] for d in first["results"]] == newest[:30]
    rest = client.get(first["next"]).json()
    assert [d["id"] for d in rest["results"]] == newest[30:] and rest["next"] is None
    for params, field in (
        ({"cursor": "not-one"}, "cursor"),
        ({"page_size": 0}, "page_size"),
        ({"page_size": 501}, "page_size"),
        ({"page_size": "ten"}, "page_size"),
    ):
        error = assert_error(client.get("/api/v1/decisions/", params), 400, "invalid")
        assert field in error["details"], (params, error)
    # The same rule where the filters do not list page_size themselves.
    error = assert_error(
        client.get("/api/v1/decision-log/replays/", {"page_size": 201}), 400, "invalid"
    )
    assert error["details"] == {"page_size": ["must be a whole number from 1 to 200"]}
    error = assert_error(
        client.get("/api/v1/decision-log/replays/", {"cursor": "x"}), 400, "invalid"
    )
    assert "leave the cursor out" in error["details"]["cursor"][0]


def made_up(text: str) -> str:
    """A cursor a client wrote itself: DRF's form, base64 of a query string."""
    return base64.b64encode(text.encode()).decode()


@pytest.mark.parametrize(
    "url",
    [
        "/api/v1/decisions/",
        "/api/v1/optimisation-runs/",
        "/api/v1/outcomes/",
        "/api/v1/decision-log/verifications/",
        "/api/v1/decision-log/replays/",
    ],
)
def test_a_made_up_cursor_position_is_a_400_on_every_cursor_list(url, make_user):
    client = as_user(make_user("everyone", *Role.values))
    assert client.get(url).status_code == 200
    for position in ("p=abc", "r=1&p=", "p=1e999", "p=99999999999999999999", "p=2026-13-45"):
        answer = client.get(url, {"cursor": made_up(position)})
        error = assert_error(answer, 400, "invalid")
        assert "leave the cursor out" in error["details"]["cursor"][0], (url, position)
    # A position of the right kind is taken, whatever it is.
    position = (
        "p=7"
        if url.endswith(("decisions/", "runs/", "outcomes/"))
        else ("p=2026-11-30+10:00:00.000001%2B00:00")
    )
    assert client.get(url, {"cursor": made_up(position)}).status_code == 200


def test_a_limit_offset_list_refuses_what_it_cannot_use(logged, auditor):  # noqa: F811
    client = as_user(auditor)
    page = client.get("/api/v1/audit/events/", {"limit": 2, "offset": 1}).json()
    assert len(page["results"]) == 2 and page["count"] > 3
    items = "/api/v1/registry/strategies/"
    assert client.get(items, {"limit": 1}).json()["count"] == 1
    for params, message in (
        ({"limit": 0}, "must be a whole number from 1 to 500"),
        ({"limit": 100000}, "must be a whole number from 1 to 500"),
        ({"offset": -1}, "must be a whole number of 0 or more"),
        ({"offset": "next"}, "must be a whole number of 0 or more"),
    ):
        for url in ("/api/v1/audit/events/", items):
            error = assert_error(client.get(url, params), 400, "invalid")
            assert list(error["details"]) == list(params), (url, params)
        assert error["details"] == {next(iter(params)): [message]}


def test_a_body_that_is_not_json_is_refused_with_415(logged, api_client_user):  # noqa: F811
    answer = as_user(api_client_user).post(
        "/api/v1/decisions/",
        {"deployment": "cross-sell", "customer_id": "C-9"},
        format="multipart",
    )
    assert_error(answer, 415, "unsupported_media_type")


@pytest.mark.parametrize(
    "url", ["/api/v1/optimisation-runs/", "/api/v1/registry/notes/house-rules/versions/"]
)
def test_the_upload_endpoints_take_json_or_multipart_but_not_a_url_encoded_form(url, make_user):
    answer = as_user(make_user("all-roles", *Role.values)).generic(
        "POST", url, "deployment=cross-sell&content=%7B%7D", "application/x-www-form-urlencoded"
    )
    assert_error(answer, 415, "unsupported_media_type")
