"""The registry and audit REST API: shapes, authentication, and one error body everywhere."""

from __future__ import annotations

import re

import pytest
from rest_framework.test import APIClient

from governance import services
from governance.models import AuditEvent, Version, VersionStatus
from tests.governance.factories import note_version

pytestmark = pytest.mark.django_db

BASE = "/api/v1/registry/notes"


def client_for(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code
    assert body["error"]["message"]
    return body["error"]


@pytest.mark.parametrize(
    "method,url",
    [
        ("get", f"{BASE}/"),
        ("get", f"{BASE}/n/versions/"),
        ("post", f"{BASE}/n/versions/"),
        ("get", f"{BASE}/n/versions/1/"),
        ("patch", f"{BASE}/n/versions/1/"),
        ("post", f"{BASE}/n/versions/1/approve/"),
        ("get", "/api/v1/audit/events/"),
        ("get", "/api/v1/audit/verify/"),
        ("get", "/api/schema/"),
    ],
)
def test_every_endpoint_needs_authentication(method, url):
    response = getattr(APIClient(), method)(url, {}, format="json")
    assert response.status_code == 401
    # The schema too answers in the API's JSON error body, not the error as YAML.
    assert_error(response, 401, "not_authenticated")


def test_maker_drafts_and_submits_checker_approves(maker, checker):
    created = client_for(maker).post(
        f"{BASE}/rules/versions/",
        {"content": {"text": "be kind"}, "change_note": "first"},
        format="json",
    )
    assert created.status_code == 201, created.content
    body = created.json()
    assert (body["number"], body["status"], body["author"]) == (1, "draft", "mia-maker")
    assert body["content"] == {"text": "be kind"} and len(body["content_hash"]) == 64

    submitted = client_for(maker).post(f"{BASE}/rules/versions/1/submit/", {}, format="json")
    assert submitted.json()["submitted_by"] == "mia-maker"
    approved = client_for(checker).post(
        f"{BASE}/rules/versions/1/approve/", {"comment": "clear"}, format="json"
    )
    assert approved.status_code == 200
    assert (approved.json()["status"], approved.json()["reviewed_by"]) == (
        "approved",
        "chen-checker",
    )

    listing = client_for(checker).get(f"{BASE}/").json()
    assert listing["count"] == 1
    item = listing["results"][0]
    assert item["name"] == "rules"
    assert [v["status"] for v in item["versions"]] == ["approved"]
    assert set(item["versions"][0]) >= {
        "number",
        "status",
        "content_hash",
        "author",
        "submitted_by",
        "reviewed_by",
        "submitted_at",
        "reviewed_at",
    }


def test_self_approval_is_403_four_eyes(make_user):
    both = make_user("pat-both", "maker", "checker")
    client = client_for(both)
    client.post(f"{BASE}/n/versions/", {"content": {"text": "x"}}, format="json")
    client.post(f"{BASE}/n/versions/1/submit/", {}, format="json")
    error = assert_error(
        client.post(f"{BASE}/n/versions/1/approve/", {}, format="json"), 403, "four_eyes"
    )
    assert "pat-both" in error["message"]
    assert Version.objects.get().status == VersionStatus.SUBMITTED


def test_forbidden_move_is_409_and_editing_past_draft_is_409(maker, checker):
    note_version(maker=maker, checker=checker, status=VersionStatus.REJECTED, name="n")
    assert_error(
        client_for(checker).post(f"{BASE}/n/versions/1/approve/", {}, format="json"),
        409,
        "invalid_transition",
    )
    assert_error(
        client_for(maker).patch(f"{BASE}/n/versions/1/", {"content": {"text": "y"}}, format="json"),
        409,
        "content_locked",
    )


def test_drafts_can_be_edited(maker, maker2):
    client_for(maker).post(f"{BASE}/n/versions/", {"content": {"text": "x"}}, format="json")
    edited = client_for(maker2).patch(
        f"{BASE}/n/versions/1/", {"content": {"text": "y"}}, format="json"
    )
    assert edited.status_code == 200
    assert edited.json()["content"] == {"text": "y"}
    assert edited.json()["contributors"] == ["max-maker", "mia-maker"]


def test_bad_input_gets_field_errors_and_writes_nothing(maker, checker):
    client = client_for(maker)
    events = AuditEvent.objects.count()
    unknown = assert_error(
        client.post(f"{BASE}/n/versions/", {"content": {"text": "x"}, "colour": 1}, format="json"),
        400,
        "invalid",
    )
    assert "colour" in unknown["details"]
    wrong_type = assert_error(
        client.post(f"{BASE}/n/versions/", {"content": "text"}, format="json"), 400, "invalid"
    )
    assert "content" in wrong_type["details"]
    # A problem inside the content is named by its path in the request body.
    empty = assert_error(
        client.post(f"{BASE}/n/versions/", {"content": {}}, format="json"), 400, "invalid"
    )
    assert list(empty["details"]) == ["content.text"]
    assert_error(
        client.post("/api/v1/registry/widgets/n/versions/", {"content": {}}, format="json"),
        404,
        "not_found",
    )
    note_version(maker=maker, checker=checker, status=VersionStatus.SUBMITTED, name="m")
    reject = assert_error(
        client_for(checker).post(f"{BASE}/m/versions/1/reject/", {}, format="json"),
        400,
        "invalid",
    )
    assert "comment" in reject["details"]
    client.post(f"{BASE}/d/versions/", {"content": {"text": "x"}}, format="json")
    bad_edit = assert_error(
        client.patch(f"{BASE}/d/versions/1/", {"content": {"text": 5}}, format="json"),
        400,
        "invalid",
    )
    assert list(bad_edit["details"]) == ["content.text"]
    assert Version.objects.get(item__name="d").content == {"text": "x"}
    assert AuditEvent.objects.count() == events + 3  # the helper's create and submit, d's create
    assert Version.objects.count() == 2


def test_missing_version_is_404(maker):
    assert_error(client_for(maker).get(f"{BASE}/n/versions/7/"), 404, "not_found")


def test_api_keys_authenticate_until_revoked(api_client_user, admin_user):
    row, key = services.api_key_create(actor=admin_user, user=api_client_user)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
    assert client.get("/api/v1/decisions/").status_code == 200
    row.refresh_from_db()
    assert row.last_used_at is not None

    wrong = APIClient()
    wrong.credentials(HTTP_AUTHORIZATION=f"Api-Key {row.prefix}.not-the-secret")
    assert_error(wrong.get("/api/v1/decisions/"), 401, "authentication_failed")

    services.api_key_revoke(actor=admin_user, key=row)
    assert_error(client.get("/api/v1/decisions/"), 401, "authentication_failed")


def test_api_client_does_not_read_the_registry(api_client_user, maker):
    # A downstream system needs a deployment's schema, not the registry's content (a
    # model version's reference sample is rows of customer data).
    services.version_create(actor=maker, kind="note", name="n", content={"text": "x"})
    client = client_for(api_client_user)
    for path in (f"{BASE}/", f"{BASE}/n/versions/", f"{BASE}/n/versions/1/"):
        error = assert_error(client.get(path), 403, "permission_denied")
        assert "api_client" not in error["message"] or "maker" in error["message"]


def test_api_client_cannot_write(api_client_user):
    error = assert_error(
        client_for(api_client_user).post(
            f"{BASE}/n/versions/", {"content": {"text": "x"}}, format="json"
        ),
        403,
        "permission_denied",
    )
    assert "maker" in error["message"]


def test_audit_endpoints_are_for_auditors_checkers_and_admins(maker, checker, auditor):
    note_version(maker=maker, checker=checker, status=VersionStatus.APPROVED)
    assert_error(client_for(maker).get("/api/v1/audit/events/"), 403, "permission_denied")
    events = client_for(auditor).get("/api/v1/audit/events/", {"item": "house-rules"}).json()
    assert [e["action"] for e in events["results"]] == ["approve", "submit", "create"]
    assert_error(
        client_for(auditor).get("/api/v1/audit/events/", {"since": "yesterday"}), 400, "invalid"
    )
    verify = client_for(auditor).get("/api/v1/audit/verify/").json()
    assert verify["ok"] is True and verify["versions_checked"] == 1


def test_openapi_schema_is_served_to_users(maker):
    response = client_for(maker).get("/api/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    assert "/api/v1/registry/{kind}/{name}/versions/{number}/{move}/" in paths


def test_the_api_docs_page_needs_no_internet(maker):
    """Swagger UI's script, styles and icon come from this server's static files, so the
    page works on a network without the internet and under a strict CSP."""
    from django.contrib.staticfiles import finders
    from django.test import Client

    browser = Client()
    browser.force_login(maker)
    page = browser.get("/api/docs/").content.decode()
    assets = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert any(a.endswith("swagger-ui-bundle.js") for a in assets), assets
    # Its set-up script is a URL of its own, not inline (the CSP allows no inline script).
    setup = [a for a in assets if a.startswith("/api/docs/?script")]
    assert len(setup) == 1, assets
    assert re.search(r"<script>\s*\S", page) is None  # no inline script
    script = browser.get(setup[0])
    assert script.status_code == 200
    assert script["Content-Type"].startswith("application/javascript")
    assert "/api/schema/" in script.content.decode()
    for asset in set(assets) - set(setup):
        assert asset.startswith("/static/"), asset  # nothing from a CDN
        assert finders.find(asset.removeprefix("/static/")), asset
    assert "cdn.jsdelivr" not in page


def test_a_role_that_may_not_upload_is_refused_before_the_body_is_read(api_client_user, auditor):
    """A broken multipart body would answer 400 if it were parsed; roles come first."""
    broken = b'--xyz\r\nContent-Disposition: form-data; name="artifact"\r\n\r\n' + b"x" * 1000
    for user, url in (
        (api_client_user, "/api/v1/registry/models/m/versions/"),
        (auditor, "/api/v1/optimisation-runs/"),
    ):
        error = assert_error(
            client_for(user).generic(
                "POST", url, broken, content_type="multipart/form-data; boundary=xyz"
            ),
            403,
            "permission_denied",
        )
        assert "needs the role" in error["message"]


def test_an_upload_over_its_limit_is_refused_from_its_length(maker, settings):
    settings.MODEL_ARTIFACT_MAX_BYTES = 10
    body = b"x" * (1024 * 1024 + 11)
    error = assert_error(
        client_for(maker).generic(
            "POST",
            "/api/v1/registry/models/m/versions/",
            body,
            content_type="multipart/form-data; boundary=xyz",
        ),
        400,
        "body_too_large",
    )
    assert error["details"] == {"body": [f"at most {1024 * 1024 + 10} bytes"]}
