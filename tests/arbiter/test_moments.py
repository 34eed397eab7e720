"""Dates at the ends of Python's calendar (year 1, year 9999) are field errors wherever
people or clients give dates: the window arithmetic behind them (the last day inclusive,
UTC, a week back) would overflow into a 500."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db


def api(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.mark.parametrize("day", ["9999-12-31", "0001-01-01", "1899-12-31"])
def test_the_pages_filters_say_the_date_is_out_of_range(auditor, day):
    page = Client()
    page.force_login(auditor)
    for url in (f"/audit/?until={day}", f"/decisions/?until={day}", f"/audit/?since={day}"):
        answer = page.get(url)
        assert answer.status_code == 200, (url, answer.status_code)
        assert "The date must be between 1900-01-01 and 2999-12-31." in answer.content.decode()


@pytest.mark.parametrize(
    "url",
    [
        "/api/v1/decisions/?until=0001-01-01T00:00:00Z&format=csv",
        "/api/v1/audit/events/?until=9999-12-31T23:59:59Z&format=csv",
        "/api/v1/monitoring/kpis/?deployment=x&until=0001-01-01T00:00:00Z",
        "/api/v1/monitoring/kpis/?deployment=x&until=9999-12-31T00:00:00Z",
    ],
)
def test_the_apis_filters_answer_400_naming_the_field(admin_user, url):
    answer = api(admin_user).get(url)
    assert answer.status_code == 400, answer.content
    assert answer.json()["error"]["details"]["until"] == [
        "must be between 1900-01-01 and 2999-12-31"
    ]


def test_an_outcome_at_the_end_of_time_is_refused_by_field_and_stores_nothing(api_client_user):
    from monitoring.models import Outcome

    body = {
        "decision_id": "00000000-0000-0000-0000-000000000000",
        "event": "paid",
        "amount": 1.0,
        "occurred_at": "0001-01-01T00:00:00+01:00",
    }
    answer = api(api_client_user).post("/api/v1/outcomes/", body, format="json")
    assert answer.status_code == 400, answer.content
    assert answer.json()["error"]["details"] == {
        "occurred_at": ["must be between 1900-01-01 and 2999-12-31"]
    }
    assert not Outcome.objects.exists()


@pytest.mark.parametrize(
    ("command", "args", "message"),
    [
        ("drift_report", ["--since", "9999-12-31"], "must be between"),
        ("drift_report", ["--until", "0001-01-01"], "must be between"),
        ("purge_decisions", ["--user", "ola-admin", "--before", "0001-01-01"], "must be between"),
    ],
)
def test_commands_say_the_date_is_out_of_range(admin_user, command, args, message):
    with pytest.raises(CommandError, match=message):
        call_command(command, *args, stdout=io.StringIO())
