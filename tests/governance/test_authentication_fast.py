"""API-key authentication in one query: nothing cached, so revocations count at once."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from governance import services
from governance.authentication import api_key_load
from governance.exceptions import ValidationFailed
from governance.models import ApiKey, AuditEvent
from governance.roles import Role, require_role, roles_of

pytestmark = pytest.mark.django_db

URL = "/api/v1/decisions/"  # a list an api_client reads (its own decisions)


@pytest.fixture
def issued(api_client_user, admin_user):
    row, key = services.api_key_create(actor=admin_user, user=api_client_user)
    # A recent last_used_at: the every-5-minutes stamp would add an UPDATE to the count.
    ApiKey.objects.filter(pk=row.pk).update(last_used_at=timezone.now())
    return row, key


def client_with(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
    return client


def test_the_key_its_user_and_its_roles_come_in_one_query(issued, api_client_user):
    row, _ = issued
    with CaptureQueriesContext(connection) as queries:
        loaded = api_key_load(row.prefix)
        assert roles_of(loaded.user) == {Role.API_CLIENT}
        require_role(loaded.user, {Role.API_CLIENT}, action="decide")
    assert len(queries.captured_queries) == 1


def test_the_loaded_rows_equal_what_the_orm_reads(issued, api_client_user):
    row, _ = issued
    loaded = api_key_load(row.prefix)
    expected = ApiKey.objects.select_related("user").get(pk=row.pk)
    for field in ApiKey._meta.concrete_fields:
        assert getattr(loaded, field.attname) == getattr(expected, field.attname), field.name
    for field in type(expected.user)._meta.concrete_fields:
        got, want = getattr(loaded.user, field.attname), getattr(expected.user, field.attname)
        assert got == want and type(got) is type(want), field.name
    assert loaded.user_id == api_client_user.pk and not loaded._state.adding


def test_unknown_prefix_loads_nothing():
    assert api_key_load("no-such-key") is None


def test_only_role_groups_count_and_a_user_without_roles_has_none(issued, api_client_user):
    row, _ = issued
    api_client_user.groups.add(Group.objects.create(name="newsletter"))
    assert api_key_load(row.prefix).user._arbiter_roles == {Role.API_CLIENT}
    api_client_user.groups.clear()
    assert roles_of(api_key_load(row.prefix).user) == frozenset()


def test_a_withdrawn_role_counts_from_the_next_request(issued, api_client_user):
    _, key = issued
    client = client_with(key)
    assert client.get(URL).status_code == 200
    api_client_user.groups.clear()
    assert client.get(URL).status_code == 403
    denied = client_with(key).post(
        "/api/v1/decisions/",
        {"deployment": "any", "customer_id": "c", "features": {}},
        format="json",
    )
    assert denied.status_code == 403
    assert denied.json()["error"]["code"] == "permission_denied"


def test_revoked_keys_are_refused_on_the_next_request(issued, admin_user):
    row, key = issued
    client = client_with(key)
    assert client.get(URL).status_code == 200
    services.api_key_revoke(actor=admin_user, key=row)
    response = client.get(URL)
    assert response.status_code == 401
    assert response.json()["error"] == {
        "code": "authentication_failed",
        "message": "This API key was revoked.",
        "details": {},
    }


def test_deactivated_users_are_refused_on_the_next_request(issued, api_client_user):
    _, key = issued
    client = client_with(key)
    assert client.get(URL).status_code == 200
    api_client_user.is_active = False
    api_client_user.save(update_fields=["is_active"])
    response = client.get(URL)
    assert response.status_code == 401
    assert response.json()["error"]["message"] == "The key's user is deactivated."


@pytest.mark.parametrize(
    "header,message",
    [
        ("Api-Key nodot", "Malformed API key."),
        ("Api-Key .secret", "Malformed API key."),
        ("Api-Key unknown.secret", "Invalid API key."),
    ],
)
def test_malformed_and_unknown_keys_are_refused(header, message):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)
    response = client.get(URL)
    assert response.status_code == 401
    assert response.json()["error"]["message"] == message


def test_a_wrong_secret_is_refused(issued):
    row, _ = issued
    response = client_with(f"{row.prefix}.not-the-secret").get(URL)
    assert response.status_code == 401
    assert response.json()["error"]["message"] == "Invalid API key."


def test_last_used_is_stamped_at_most_every_few_minutes(api_client_user, admin_user):
    row, key = services.api_key_create(actor=admin_user, user=api_client_user)
    client = client_with(key)
    assert client.get(URL).status_code == 200
    row.refresh_from_db()
    first = row.last_used_at
    assert first is not None
    assert client.get(URL).status_code == 200
    row.refresh_from_db()
    assert row.last_used_at == first


def test_a_key_lasts_api_key_days_then_is_refused(api_client_user, admin_user, settings):
    settings.API_KEY_DAYS = 90
    row, key = services.api_key_create(actor=admin_user, user=api_client_user)
    lasts = row.expires_at - row.created_at
    assert timedelta(days=90) - timedelta(seconds=5) < lasts <= timedelta(days=90)
    client = client_with(key)
    assert client.get(URL).status_code == 200
    ApiKey.objects.filter(pk=row.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    response = client.get(URL)
    assert response.status_code == 401
    message = response.json()["error"]["message"]
    assert message.startswith("This API key expired at ")
    assert message.endswith("UTC; ask an administrator for a new one.")
    event = AuditEvent.objects.filter(action="api_key_create").latest("pk")
    assert event.details["expires_at"] == row.expires_at.isoformat()


def test_a_key_near_its_expiry_is_logged_so_it_is_rotated(api_client_user, admin_user, caplog):
    row, key = services.api_key_create(actor=admin_user, user=api_client_user, days=10)
    with caplog.at_level("WARNING", logger="governance.authentication"):
        assert client_with(key).get(URL).status_code == 200  # first use: last_used stamped
    assert f"API key {row.prefix} of {api_client_user.username} expires at" in caplog.text
    caplog.clear()
    _, far_key = services.api_key_create(actor=admin_user, user=api_client_user, days=365)
    with caplog.at_level("WARNING", logger="governance.authentication"):
        assert client_with(far_key).get(URL).status_code == 200
    assert "expires at" not in caplog.text


def test_keys_that_never_expire_are_asked_for_and_bad_lifetimes_refused(
    api_client_user, admin_user
):
    row, key = services.api_key_create(actor=admin_user, user=api_client_user, days=0)
    assert row.expires_at is None
    assert client_with(key).get(URL).status_code == 200
    for days in (-1, 3651, 1.5, True, "30"):
        with pytest.raises(ValidationFailed, match="whole number of days") as raised:
            services.api_key_create(actor=admin_user, user=api_client_user, days=days)
        assert raised.value.details == {"days": ["a whole number from 0 to 3650"]}
    assert ApiKey.objects.count() == 1
