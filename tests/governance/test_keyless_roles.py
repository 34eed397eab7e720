"""API keys cannot carry the checker or admin role: approving and administering are done
signed in, behind the password, its lockout and the idle timeout, not with a long-lived
string a script or a leaked file can present."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone
from rest_framework.test import APIClient

from governance import services
from governance.exceptions import ValidationFailed
from governance.models import ApiKey, AuditAction, AuditEvent
from governance.roles import Role, roles_of

pytestmark = pytest.mark.django_db


def keyed(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
    return client


@pytest.mark.parametrize("role", [Role.CHECKER, Role.ADMIN])
def test_no_key_is_issued_to_a_checker_or_an_administrator(make_user, admin_user, role):
    person = make_user("pat", Role.MAKER, role)
    with pytest.raises(ValidationFailed) as refused:
        services.api_key_create(actor=admin_user, user=person)
    assert f"pat holds the {role} role, which API keys cannot carry" in refused.value.message
    assert "an account of its own without them" in refused.value.message
    assert refused.value.details == {"user": [f"holds {role}, which API keys cannot carry"]}
    assert not ApiKey.objects.exists()
    assert not AuditEvent.objects.filter(action=AuditAction.API_KEY_CREATE).exists()

    with pytest.raises(
        CommandError, match=f"pat holds the {role} role, which API keys cannot carry"
    ):
        call_command("create_api_key", "--user", "pat", stdout=io.StringIO())
    assert not ApiKey.objects.exists()


def test_makers_auditors_and_clients_get_keys_and_use_them(make_user, admin_user):
    pipeline = make_user("model-ci", Role.MAKER, Role.AUDITOR)
    _, key = services.api_key_create(actor=admin_user, user=pipeline)
    assert keyed(key).get("/api/v1/registry/notes/").status_code == 200


def test_a_role_a_key_cannot_carry_is_refused_while_the_account_has_live_keys(maker, admin_user):
    row, key = services.api_key_create(actor=admin_user, user=maker, name="notebook")
    with pytest.raises(ValidationFailed) as refused:
        services.user_grant_roles(actor=admin_user, user=maker, roles=[Role.CHECKER])
    message = refused.value.message
    assert f"{maker.username} has API keys in use ({row.prefix})" in message
    assert "revoke the keys first" in message
    assert refused.value.details == {"roles": ["checker: the account has API keys"]}
    assert roles_of(maker) == {Role.MAKER}
    assert not AuditEvent.objects.filter(action=AuditAction.ROLE_GRANT).exists()
    # update_user changes nothing at all when one of its changes is refused.
    with pytest.raises(CommandError, match="has API keys in use"):
        call_command(
            "update_user", maker.username, "--grant", "checker", "--email", "m@bank.example"
        )
    maker.refresh_from_db()
    assert maker.email == ""
    assert keyed(key).get("/api/v1/registry/notes/").status_code == 200

    # Expired and revoked keys do not stand in the way.
    ApiKey.objects.filter(pk=row.pk).update(expires_at=timezone.now() - timedelta(days=1))
    services.user_grant_roles(actor=admin_user, user=maker, roles=[Role.CHECKER])
    assert roles_of(maker) == {Role.MAKER, Role.CHECKER}


def test_a_key_whose_user_came_to_hold_such_a_role_another_way_is_refused(maker, admin_user):
    _, key = services.api_key_create(actor=admin_user, user=maker)
    client = keyed(key)
    assert client.get("/api/v1/registry/notes/").status_code == 200
    maker.groups.add(Group.objects.get(name=Role.ADMIN))  # around the services
    answer = client.get("/api/v1/registry/notes/")
    assert answer.status_code == 401
    assert answer.json()["error"]["message"] == (
        f"This API key's user, {maker.username}, holds the admin role, which API keys "
        "cannot carry: sign in to approve or administer, and give the client an account "
        "without it."
    )
