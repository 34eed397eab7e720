"""REST of optimisation runs: start (JSON or a file), follow, page, export, cancel, publish."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from decisions.demo_setup import demo_load
from decisions.models import Decision, OptimisationRun
from decisions.populations import population_simulated

pytestmark = pytest.mark.django_db


@pytest.fixture
def users():
    demo_load()
    return {u.username: u for u in get_user_model().objects.all()}


def as_user(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def start(client, **body):
    return client.post("/api/v1/optimisation-runs/", body, format="json")


def test_start_follow_page_and_export_a_run(users, django_capture_on_commit_callbacks):
    maker = as_user(users["maker"])
    with django_capture_on_commit_callbacks(execute=True):
        response = start(
            maker,
            deployment="collections",
            simulated={"customers": 600, "seed": 3},
            description="June cycle",
        )
    assert response.status_code == 201, response.json()
    # No broker here: the task ran in-process when the transaction committed.
    run = maker.get(f"/api/v1/optimisation-runs/{response.json()['id']}/").json()
    assert run["status"] == "succeeded", run["error"]
    assert run["progress"] == 100.0
    assert run["population"] == {
        "kind": "simulated",
        "use_case": "collections",
        "customers": 600,
        "seed": 3,
    }
    assert run["strategy"]["name"] and run["limits"] and run["kpis"]["per_action"]
    assert run["gap"] <= 1e-3

    auditor = as_user(users["auditor"])
    detail = auditor.get(f"/api/v1/optimisation-runs/{run['id']}/").json()
    assert detail["objective"] == run["objective"]
    listed = auditor.get("/api/v1/optimisation-runs/?status=succeeded").json()
    assert [r["id"] for r in listed["results"]] == [run["id"]]

    seen, url = [], f"/api/v1/optimisation-runs/{run['id']}/decisions/?page_size=250"
    while url:
        page = auditor.get(url).json()
        seen += [d["customer_id"] for d in page["results"]]
        url = page["next"]
    assert len(seen) == len(set(seen)) == 600
    assert seen[:3] == ["sim-3-0", "sim-3-1", "sim-3-2"]  # population order

    # Customers' decisions are for the decision log's readers, not for who started the run
    # nor for downstream systems; the run's totals are for the people who work with runs.
    for outsider, refusal in (
        (maker, "read a run's decisions"),
        (as_user(users["lending-app"]), "read optimisation runs"),
    ):
        for suffix in ("", "?format=csv"):
            refused = outsider.get(f"/api/v1/optimisation-runs/{run['id']}/decisions/{suffix}")
            assert refused.status_code == 403, refused.content
            assert refused["Content-Type"].startswith("application/json")
            assert refusal in refused.json()["error"]["message"]

    export = auditor.get(f"/api/v1/optimisation-runs/{run['id']}/decisions/?format=csv")
    assert export.status_code == 200
    assert export["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(b"".join(export.streaming_content).decode())))
    assert len(rows) == 600
    logged = {str(d.decision_id): d.action_id for d in Decision.objects.filter(run_id=run["id"])}
    assert {r["decision_id"]: r["action_id"] for r in rows} == logged
    assert {"channel", "hour", "discount"} <= set(rows[0])


def test_upload_a_population_file(users, django_capture_on_commit_callbacks):
    people = population_simulated("cross-sell", 300, seed=4)
    upload = io.BytesIO(people.to_csv(index=False).encode())
    upload.name = "campaign.csv"
    with django_capture_on_commit_callbacks(execute=True):
        response = as_user(users["maker"]).post(
            "/api/v1/optimisation-runs/",
            {"population": upload, "deployment": "cross-sell", "description": "Q3"},
            format="multipart",
        )
    assert response.status_code == 201, response.json()
    run = as_user(users["maker"]).get(f"/api/v1/optimisation-runs/{response.json()['id']}/").json()
    assert run["status"] == "succeeded", run["error"]
    assert run["population"]["name"] == "campaign.csv"
    assert run["population"]["format"] == "csv"
    assert "path" not in run["population"]
    assert Decision.objects.filter(run_id=run["id"]).count() == 300


def test_a_file_without_a_needed_column_is_refused_at_upload(users, settings):
    people = population_simulated("cross-sell", 30, seed=4).drop(columns=["income"])
    upload = io.BytesIO(people.to_csv(index=False).encode())
    upload.name = "campaign.csv"
    before = OptimisationRun.objects.count()
    stored = {p for p in Path(settings.ARTIFACT_ROOT).rglob("*") if p.is_file()}
    response = as_user(users["maker"]).post(
        "/api/v1/optimisation-runs/",
        {"population": upload, "deployment": "cross-sell"},
        format="multipart",
    )
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["message"] == "The population lacks the column income."
    assert error["details"] == {"population.columns.income": ["column missing"]}
    assert OptimisationRun.objects.count() == before
    # Neither stored nor left staged.
    assert {p for p in Path(settings.ARTIFACT_ROOT).rglob("*") if p.is_file()} == stored


def test_an_empty_file_is_refused_as_a_population_file(users):
    upload = io.BytesIO(b"")
    upload.name = "campaign.csv"
    response = as_user(users["maker"]).post(
        "/api/v1/optimisation-runs/",
        {"population": upload, "deployment": "cross-sell"},
        format="multipart",
    )
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["details"] == {"population": ["The submitted file is empty."]}
    assert not OptimisationRun.objects.exists()


def test_a_bad_value_fails_the_run_and_its_decisions_are_refused(
    users, django_capture_on_commit_callbacks
):
    people = population_simulated("cross-sell", 30, seed=4).astype({"income": object})
    people.loc[6, "income"] = "n/a"
    upload = io.BytesIO(people.to_csv(index=False).encode())
    upload.name = "campaign.csv"
    with django_capture_on_commit_callbacks(execute=True):
        created = as_user(users["maker"]).post(
            "/api/v1/optimisation-runs/",
            {"population": upload, "deployment": "cross-sell"},
            format="multipart",
        )
    assert created.status_code == 201, created.content
    run = as_user(users["maker"]).get(f"/api/v1/optimisation-runs/{created.json()['id']}/").json()
    assert run["status"] == "failed"
    assert "income: row 7: must be a number" in run["error"]
    assert run["error_details"] == {"population.income": ["row 7: must be a number"]}
    response = as_user(users["auditor"]).get(f"/api/v1/optimisation-runs/{run['id']}/decisions/")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "run_not_succeeded"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"deployment": "collections", "simulated": {"customers": 0}}, "simulated"),
        ({"deployment": "collections", "simulated": {"customers": 10, "x": 1}}, "simulated"),
        ({"deployment": "collections", "simulated": {}, "colour": "red"}, "colour"),
        ({"deployment": "collections"}, "population"),
        ({"simulated": {"customers": 10}}, "deployment"),
        ({"deployment": "collections", "simulated": {}, "time_limit_seconds": 0}, "time_limit"),
        (
            {
                "deployment": "collections",
                "strategy": {"name": "x", "version": 1},
                "simulated": {},
            },
            "deployment",
        ),
        (
            {
                "strategy": {"name": "nope", "version": 1},
                "constraint_set": {"name": "n", "version": 1},
                "simulated": {},
            },
            "strategy",
        ),
    ],
)
def test_bad_requests_get_field_errors_and_store_nothing(users, body, field):
    response = start(as_user(users["maker"]), **body)
    assert response.status_code == 400, response.json()
    error = response.json()["error"]
    assert any(key.startswith(field) for key in error["details"]), error
    assert OptimisationRun.objects.count() == 0


def test_unknown_deployment_is_404(users):
    response = start(as_user(users["maker"]), deployment="nope", simulated={})
    assert response.status_code == 404


@pytest.mark.parametrize("name", ["checker", "auditor", "lending-app"])
def test_only_makers_and_admins_start_runs(users, name):
    response = start(as_user(users[name]), deployment="collections", simulated={})
    assert response.status_code == 403


def test_anonymous_gets_401():
    assert APIClient().get("/api/v1/optimisation-runs/").status_code in (401, 403)
    response = APIClient().post("/api/v1/optimisation-runs/", {}, format="json")
    assert response.status_code in (401, 403)


def test_cancel_and_publish(users, django_capture_on_commit_callbacks):
    maker = as_user(users["maker"])
    queued = start(maker, deployment="collections", simulated={"customers": 50}).json()
    assert queued["status"] == "queued"  # no on-commit execution: it waits
    response = as_user(users["checker"]).post(f"/api/v1/optimisation-runs/{queued['id']}/cancel/")
    assert response.status_code == 403
    cancelled = maker.post(f"/api/v1/optimisation-runs/{queued['id']}/cancel/").json()
    assert cancelled["status"] == "cancelled"
    assert maker.post(f"/api/v1/optimisation-runs/{queued['id']}/cancel/").status_code == 409

    with django_capture_on_commit_callbacks(execute=True):
        created = start(maker, deployment="collections", simulated={"customers": 5000}).json()
    run = maker.get(f"/api/v1/optimisation-runs/{created['id']}/").json()
    assert run["status"] == "succeeded", run["error"]
    tricky = maker.post(
        f"/api/v1/optimisation-runs/{run['id']}/publish-prices/",
        {"comment": "Prices \u202eOK"},
        format="json",
    )
    assert tricky.status_code == 400  # the field the client sent is named, not change_note
    assert list(tricky.json()["error"]["details"]) == ["comment"]
    response = maker.post(f"/api/v1/optimisation-runs/{run['id']}/publish-prices/", {})
    assert response.status_code == 201, response.json()
    published = response.json()
    assert published["status"] == "submitted"
    assert published["prices"] == run["prices"]
    detail = maker.get(f"/api/v1/optimisation-runs/{run['id']}/").json()
    assert detail["published_version"]["version"] == published["version"]
    # Another proposal while one is under review is refused (one submitted version).
    again = maker.post(f"/api/v1/optimisation-runs/{run['id']}/publish-prices/", {})
    assert again.status_code == 409
