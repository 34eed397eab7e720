"""Drift reports through the REST API and the reviewer pages: who reads them, what they show,
and Evidently's HTML kept out of our pages (a sandboxed frame with a strict policy)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client

from governance.models import Version
from governance.roles import Role
from monitoring.drift import drift_report_run, drift_window_default
from monitoring.models import DriftReport
from tests.monitoring.test_drift import customers, decisions_log

pytestmark = pytest.mark.django_db

READERS = [Role.MAKER, Role.CHECKER, Role.AUDITOR, Role.ADMIN]


@pytest.fixture
def report(deployment, api_client_user) -> DriftReport:
    window = drift_window_default()
    decisions_log(
        deployment,
        api_client_user,
        customers(200, seed=31, income_factor=2.5),
        at=window.since + timedelta(hours=3),
    )
    version = Version.objects.get(item__kind="model", item__name="take-up", number=1)
    return drift_report_run(model_version=version, since=window.since, until=window.until)


@pytest.fixture
def person(request, make_user):
    return make_user(f"reader-{request.param}", request.param)


def page_client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.mark.parametrize("person", READERS, indirect=True)
def test_people_read_the_reports_over_the_api(report, person, client_of):
    listed = client_of(person).get("/api/v1/monitoring/drift/")
    assert listed.status_code == 200
    (row,) = listed.json()["results"]
    assert row["id"] == report.pk and row["model"] == "take-up" and row["version"] == 1
    assert row["status"] == "act" and row["sampled"] is False
    assert row["current_rows"] == 200 and row["reference_rows"] == 300
    assert row["psi_score"] == pytest.approx(report.psi_score)

    detail = client_of(person).get(f"/api/v1/monitoring/drift/{report.pk}/").json()
    income = {f["name"]: f for f in detail["features"]}["income"]
    assert income["drifted"] is True and income["test"] == "K-S p_value"
    assert income["psi_band"] == "act" and len(income["psi_bins"]) == 10
    assert detail["score"]["psi"] == pytest.approx(report.psi_score)
    assert detail["parameters"]["psi_epsilon"] == 0.0001


def test_api_clients_and_strangers_may_not_read_drift(report, api_client_user, client_of):
    refused = client_of(api_client_user).get("/api/v1/monitoring/drift/")
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "permission_denied"
    assert (
        client_of(api_client_user).get(f"/api/v1/monitoring/drift/{report.pk}/").status_code == 403
    )
    from rest_framework.test import APIClient

    assert APIClient().get("/api/v1/monitoring/drift/").status_code in (401, 403)


def test_the_list_filters_and_an_unknown_report_is_404(report, checker, client_of):
    api = client_of(checker)
    assert (
        api.get("/api/v1/monitoring/drift/?model=take-up&version=1&status=act").json()["count"] == 1
    )
    assert api.get("/api/v1/monitoring/drift/?status=stable").json()["count"] == 0
    bad = api.get("/api/v1/monitoring/drift/?status=fine")
    assert bad.status_code == 400 and "status" in bad.json()["error"]["details"]
    missing = api.get("/api/v1/monitoring/drift/99999/")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "drift_report_not_found"


def test_the_schema_documents_the_drift_endpoints(checker, client_of):
    schema = client_of(checker).get("/api/schema/?format=json").json()
    assert "/api/v1/monitoring/drift/" in schema["paths"]
    detail = schema["paths"]["/api/v1/monitoring/drift/{report_id}/"]["get"]
    assert detail["operationId"] == "drift_report_get"


def test_the_pages_show_the_table_and_frame_evidently_in_a_sandbox(report, checker):
    client = page_client(checker)
    listing = client.get("/drift/").content.decode()
    assert f'href="/drift/{report.pk}/"' in listing and "take-up v1" in listing
    assert 'aria-current="page"' in listing and ">Drift<" in listing

    page = client.get(f"/drift/{report.pk}/").content.decode()
    assert "<caption" in page and 'scope="row">income</th>' in page
    assert "K-S p_value" in page
    assert f'src="/drift/{report.pk}/evidently/" sandbox="allow-scripts"' in page
    # Evidently's own scripts never reach our page.
    html = (Path(settings.ARTIFACT_ROOT) / report.html_path).read_text()
    assert "root_metric_" in html and "root_metric_" not in page

    framed = client.get(f"/drift/{report.pk}/evidently/")
    assert framed.status_code == 200
    assert framed["Content-Type"].startswith("text/html")
    policy = framed["Content-Security-Policy"]
    assert "sandbox allow-scripts" in policy and "allow-same-origin" not in policy
    assert "default-src 'none'" in policy and "connect-src 'none'" in policy
    assert "unsafe-eval" not in policy
    assert "frame-ancestors 'self'" in policy
    assert framed["X-Frame-Options"] == "SAMEORIGIN"
    assert framed.content == html.encode()


def test_a_changed_evidently_file_is_not_served(report, checker):
    path = Path(settings.ARTIFACT_ROOT) / report.html_path
    path.write_text("<script>alert('changed')</script>")
    client = page_client(checker)
    assert client.get(f"/drift/{report.pk}/evidently/").status_code == 404
    page = client.get(f"/drift/{report.pk}/").content.decode()
    assert "no longer matches its SHA-256" in page and "<iframe" not in page


def test_the_dashboard_shows_the_latest_drift_per_model(report, auditor):
    dashboard = page_client(auditor).get("/").content.decode()
    assert "Model drift" in dashboard
    assert f'href="/drift/{report.pk}/">Report {report.pk}</a>' in dashboard


def test_the_dashboard_says_when_a_model_has_no_report_yet(deployment, checker):
    dashboard = page_client(checker).get("/").content.decode()
    assert "No drift report yet." in dashboard


def test_api_clients_get_no_drift_link_or_page(report, api_client_user):
    client = page_client(api_client_user)
    assert client.get("/drift/").status_code == 403
    assert client.get(f"/drift/{report.pk}/evidently/").status_code == 403
