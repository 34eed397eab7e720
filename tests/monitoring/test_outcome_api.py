"""Reporting outcomes over REST: single and batch, refused or ignored item by item."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import DatabaseError

from decisions.models import OptimisationRun
from monitoring.models import Outcome, OutcomeBatch

pytestmark = pytest.mark.django_db

URL = "/api/v1/outcomes/"
DECIDED = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


def at(hours: float) -> str:
    return (DECIDED + timedelta(hours=hours)).isoformat()


def assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"error"} and body["error"]["code"] == code, body
    return body["error"]


def test_one_outcome_is_recorded(make_decision, api):
    decision = make_decision(at=DECIDED)
    response = api.post(
        URL,
        {
            "decision_id": str(decision.decision_id),
            "event": "paid",
            "amount": 125.5,
            "occurred_at": at(2),
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["received"], body["created"], body["duplicates"], body["refused"]) == (1, 1, 0, 0)
    assert body["items"] == [
        {"index": 0, "status": "created", "code": "", "message": "", "details": {}}
    ]
    outcome = Outcome.objects.get()
    assert (outcome.decision_id, outcome.event, outcome.amount) == (
        decision.decision_id,
        "paid",
        Decimal("125.50"),
    )
    assert outcome.occurred_at == DECIDED + timedelta(hours=2)
    assert str(outcome.batch.batch_id) == body["batch_id"]


def test_a_batch_reports_every_item_and_stores_only_the_good_ones(make_decision, api):
    first, second = make_decision(at=DECIDED), make_decision(at=DECIDED, customer="c-2")
    items = [
        {"decision_id": str(first.decision_id), "event": "accepted", "occurred_at": at(1)},
        {"decision_id": str(first.decision_id), "event": "paid", "occurred_at": at(3)},
        {
            "decision_id": "00000000-0000-4000-8000-000000000000",
            "event": "accepted",
            "occurred_at": at(1),
        },
        {
            "decision_id": str(second.decision_id),
            "event": "defaulted",
            "amount": 900,
            "occurred_at": at(-1),
        },
        {"decision_id": str(second.decision_id), "event": "exploded", "occurred_at": at(1)},
        {"decision_id": str(second.decision_id), "event": "declined", "occurred_at": at(1)},
        {"decision_id": str(second.decision_id), "event": "declined", "occurred_at": at(1)},
    ]
    response = api.post(URL, {"outcomes": items}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["received"], body["created"], body["duplicates"], body["refused"]) == (7, 2, 1, 4)
    by_index = {item["index"]: item for item in body["items"]}
    assert by_index[0]["status"] == "created"
    assert by_index[1]["code"] == "invalid"
    assert by_index[1]["details"] == {"amount": ["a paid event needs the amount"]}
    assert by_index[2]["code"] == "unknown_decision"
    assert "decision_id" in by_index[2]["details"]
    assert by_index[3]["code"] == "before_decision"
    assert "occurred_at" in by_index[3]["details"]
    assert by_index[4]["details"]["event"][0].startswith("must be one of accepted")
    assert (by_index[5]["status"], by_index[6]["status"]) == ("created", "duplicate")
    stored = sorted(Outcome.objects.values_list("event", flat=True))
    assert stored == ["accepted", "declined"]
    batch = OutcomeBatch.objects.get()
    assert (batch.received, batch.created, batch.duplicates, batch.refused) == (7, 2, 1, 4)


def test_a_null_item_is_refused_alone(make_decision, api):
    decision = make_decision(at=DECIDED)
    good = {"decision_id": str(decision.decision_id), "event": "accepted", "occurred_at": at(1)}
    response = api.post(URL, {"outcomes": [good, None]}, format="json")
    assert response.status_code == 201, response.content
    items = response.json()["items"]
    assert [item["status"] for item in items] == ["created", "refused"]
    assert items[1]["details"] == {
        "non_field_errors": ["must be an object with decision_id, event, occurred_at"]
    }
    assert list(Outcome.objects.values_list("event", flat=True)) == ["accepted"]


def test_posting_the_same_batch_again_stores_nothing_new(make_decision, api):
    decision = make_decision(at=DECIDED)
    items = [
        {"decision_id": str(decision.decision_id), "event": "accepted", "occurred_at": at(1)},
        {
            "decision_id": str(decision.decision_id),
            "event": "paid",
            "amount": "10.00",
            "occurred_at": at(5),
        },
    ]
    items[1]["amount"] = 10
    assert api.post(URL, {"outcomes": items}, format="json").status_code == 201
    again = api.post(URL, {"outcomes": items}, format="json")
    assert again.status_code == 200
    body = again.json()
    assert (body["created"], body["duplicates"]) == (0, 2)
    assert [i["code"] for i in body["items"]] == ["duplicate", "duplicate"]
    assert Outcome.objects.count() == 2
    # The same event at another time is another outcome (a second payment).
    later = {**items[1], "occurred_at": at(30)}
    assert api.post(URL, later, format="json").status_code == 201
    assert Outcome.objects.count() == 3


def test_a_single_refused_outcome_answers_with_the_error_body(make_decision, api):
    decision = make_decision(at=DECIDED)
    unknown = api.post(
        URL,
        {
            "decision_id": "00000000-0000-4000-8000-000000000000",
            "event": "accepted",
            "occurred_at": at(1),
        },
        format="json",
    )
    assert_error(unknown, 404, "not_found")
    early = api.post(
        URL,
        {"decision_id": str(decision.decision_id), "event": "accepted", "occurred_at": at(-2)},
        format="json",
    )
    error = assert_error(early, 400, "before_decision")
    assert list(error["details"]) == ["occurred_at"]
    bad = api.post(
        URL,
        {
            "decision_id": "nope",
            "event": "paid",
            "amount": -3,
            "occurred_at": "yesterday",
            "colour": "red",
        },
        format="json",
    )
    error = assert_error(bad, 400, "invalid")
    assert set(error["details"]) == {"decision_id", "amount", "occurred_at", "colour"}
    naive = api.post(
        URL,
        {
            "decision_id": str(decision.decision_id),
            "event": "accepted",
            "occurred_at": "2026-03-02T12:00:00",
        },
        format="json",
    )
    assert "time zone" in assert_error(naive, 400, "invalid")["details"]["occurred_at"][0]
    future = api.post(
        URL,
        {
            "decision_id": str(decision.decision_id),
            "event": "accepted",
            "occurred_at": (datetime.now(UTC) + timedelta(days=1)).isoformat(),
        },
        format="json",
    )
    assert assert_error(future, 400, "invalid")["details"] == {"occurred_at": ["is in the future"]}
    extra_cents = api.post(
        URL,
        {
            "decision_id": str(decision.decision_id),
            "event": "paid",
            "amount": "1.234",
            "occurred_at": at(1),
        },
        format="json",
    )
    assert assert_error(extra_cents, 400, "invalid")["details"] == {"amount": ["must be a number"]}
    assert not Outcome.objects.exists()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ([], "non_field_errors"),
        ({"outcomes": []}, "outcomes"),
        ({"outcomes": "all of them"}, "outcomes"),
        ({"outcomes": [{}], "source": "crm"}, "source"),
    ],
)
def test_a_malformed_envelope_is_a_field_level_400(api, body, field):
    response = api.post(URL, body, format="json")
    error = assert_error(response, 400, "invalid")
    assert field in error["details"]


def test_a_batch_over_ten_thousand_is_refused_whole(make_decision, api):
    decision = make_decision(at=DECIDED)
    item = {"decision_id": str(decision.decision_id), "event": "accepted", "occurred_at": at(1)}
    response = api.post(URL, {"outcomes": [item] * 10_001}, format="json")
    assert "outcomes" in assert_error(response, 400, "invalid")["details"]
    assert not OutcomeBatch.objects.exists()


def test_a_failed_write_stores_nothing_of_the_batch(make_decision, api, monkeypatch):
    decision = make_decision(at=DECIDED)
    real = Outcome.objects.bulk_create

    def half_then_fail(rows, **kwargs):
        real(rows[: len(rows) // 2], **kwargs)
        raise DatabaseError("disk full")

    monkeypatch.setattr(Outcome.objects, "bulk_create", half_then_fail)
    items = [
        {"decision_id": str(decision.decision_id), "event": event, "occurred_at": at(1)}
        for event in ("accepted", "complained", "opted_out", "cured")
    ]
    response = api.post(URL, {"outcomes": items}, format="json")
    assert_error(response, 503, "outcomes_unavailable")
    assert not Outcome.objects.exists() and not OutcomeBatch.objects.exists()


def test_clients_report_only_on_their_own_decisions(
    make_decision, make_user, api, api_client_user, client_of, admin_user
):
    other = make_user("svc-cards", "api_client")
    theirs = make_decision(at=DECIDED, client=other)
    mine = make_decision(at=DECIDED)
    item = {"decision_id": str(theirs.decision_id), "event": "accepted", "occurred_at": at(1)}
    assert_error(api.post(URL, item, format="json"), 403, "permission_denied")
    batch = api.post(
        URL,
        {"outcomes": [item, {**item, "decision_id": str(mine.decision_id)}]},
        format="json",
    ).json()
    assert [i["code"] for i in batch["items"]] == ["not_your_decision", ""]
    # An admin may report on any client's decision.
    assert client_of(admin_user).post(URL, item, format="json").status_code == 201

    listed = {o["decision_id"] for o in api.get(URL).json()["results"]}
    assert listed == {str(mine.decision_id)}
    assert_error(api.get(URL, {"decision_id": str(theirs.decision_id)}), 403, "permission_denied")
    theirs_listed = client_of(other).get(URL).json()["results"]
    assert [o["decision_id"] for o in theirs_listed] == [str(theirs.decision_id)]


def test_outcomes_of_a_run_on_simulated_customers_are_refused(make_decision, api, maker):
    # Nobody was offered anything: KPIs leave such runs out, and their outcomes were
    # counted beside the KPIs all the same.
    mine = make_decision(at=DECIDED)
    strategy, limits = mine.strategy_version, mine.constraint_set_version

    def run(population):
        return OptimisationRun.objects.create(
            created_by=maker,
            created_at=DECIDED,
            deployment_name="cross-sell",
            strategy_version=strategy,
            constraint_set_version=limits,
            population=population,
            time_limit_seconds=600,
            status="succeeded",
        )

    simulated = make_decision(at=DECIDED, run=run({"kind": "simulated", "customers": 1, "seed": 1}))
    from_file = make_decision(
        at=DECIDED, run=run({"kind": "file", "name": "march.csv", "sha256": "0" * 64})
    )
    item = {"decision_id": str(simulated.decision_id), "event": "accepted", "occurred_at": at(1)}
    error = assert_error(api.post(URL, item, format="json"), 400, "simulated_decision")
    assert error["details"] == {
        "decision_id": [
            "this decision is from an optimisation run on simulated customers; nobody was "
            "offered anything"
        ]
    }
    others = [{**item, "decision_id": str(d.decision_id)} for d in (mine, from_file)]
    batch = api.post(URL, {"outcomes": [item, *others]}, format="json").json()
    assert [(i["status"], i["code"]) for i in batch["items"]] == [
        ("refused", "simulated_decision"),
        ("created", ""),
        ("created", ""),
    ]
    assert set(Outcome.objects.values_list("decision_id", flat=True)) == {
        mine.decision_id,
        from_file.decision_id,
    }


@pytest.mark.parametrize("role", ["maker", "checker", "auditor"])
def test_only_clients_and_admins_report_outcomes(make_decision, make_user, client_of, role):
    decision = make_decision(at=DECIDED)
    user = make_user(f"someone-{role}", role)
    item = {"decision_id": str(decision.decision_id), "event": "accepted", "occurred_at": at(1)}
    assert_error(client_of(user).post(URL, item, format="json"), 403, "permission_denied")
    assert not Outcome.objects.exists()


def test_auditors_checkers_and_admins_read_every_outcome(
    make_decision, make_user, api, client_of, auditor, checker, admin_user, maker
):
    other = make_user("svc-cards", "api_client")
    for client, hours in ((None, 1), (other, 2)):
        decision = make_decision(at=DECIDED, client=client)
        item = {
            "decision_id": str(decision.decision_id),
            "event": "cured",
            "occurred_at": at(hours),
        }
        assert (
            client_of(client or decision.client).post(URL, item, format="json").status_code == 201
        )
    for reader in (auditor, checker, admin_user):
        body = client_of(reader).get(URL, {"event": "cured"}).json()
        assert len(body["results"]) == 2
        assert body["results"][0]["occurred_at"] > body["results"][1]["occurred_at"]
    assert_error(client_of(maker).get(URL), 403, "permission_denied")


def test_anonymous_callers_get_401():
    from rest_framework.test import APIClient

    assert_error(APIClient().post(URL, {}, format="json"), 401, "not_authenticated")
    assert_error(APIClient().get("/api/v1/monitoring/kpis/"), 401, "not_authenticated")


def test_the_schema_documents_the_monitoring_endpoints(client_of, maker):
    paths = client_of(maker).get("/api/schema/", HTTP_ACCEPT="application/json").json()["paths"]
    assert {"post", "get"} <= set(paths["/api/v1/outcomes/"])
    assert "get" in paths["/api/v1/monitoring/kpis/"]


def test_the_largest_amount_comes_back_to_the_cent_and_larger_ones_are_refused(
    make_decision, api, client_of, auditor
):
    # SQLite keeps decimals as 15-digit floats: 99999999999999.99 was accepted, came back as
    # 1e14, and reading it failed the outcome list and the KPI report with a 500.
    decision = make_decision(at=DECIDED)
    largest = {
        "decision_id": str(decision.decision_id),
        "event": "paid",
        "amount": 999_999_999_999.99,
        "occurred_at": at(1),
    }
    assert api.post(URL, largest, format="json").status_code == 201
    reader = client_of(auditor)
    listed = reader.get(URL)
    assert listed.status_code == 200, listed.content
    assert [o["amount"] for o in listed.json()["results"]] == [999_999_999_999.99]
    assert Outcome.objects.get().amount == Decimal("999999999999.99")
    kpis = reader.get(f"/api/v1/monitoring/kpis/?deployment={decision.deployment_name}")
    assert kpis.status_code == 200, kpis.content
    for amount in (1e12, 99_999_999_999_999.99):
        refused = api.post(URL, {**largest, "amount": amount}, format="json")
        assert assert_error(refused, 400, "invalid")["details"] == {
            "amount": ["must be less than 1,000,000,000,000"]
        }
    assert Outcome.objects.count() == 1
