"""Who holds which role changes only through the services, each change an audit event:
``manage.py update_user`` and the admin's actions; the admin shows people read-only, so a
role cannot be granted there without a trace."""

from __future__ import annotations

import io

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from rest_framework.test import APIClient

from governance import services
from governance.audit import audit_chain_verify
from governance.exceptions import PermissionDenied, ValidationFailed
from governance.models import AuditAction, AuditEvent
from governance.roles import Role, roles_of

pytestmark = pytest.mark.django_db


def update_user(*args: str) -> str:
    out = io.StringIO()
    call_command("update_user", *args, stdout=out)
    return out.getvalue()


def events(action: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=action))


def fresh(user):
    return get_user_model().objects.get(pk=user.pk)


def test_roles_are_granted_and_revoked_with_an_audit_event_each(maker):
    output = update_user(maker.username, "--grant", "checker", "--grant", "admin")
    assert f"{maker.username}: active; roles admin, checker, maker." in output
    assert roles_of(fresh(maker)) == {"maker", "checker", "admin"}
    assert fresh(maker).is_staff  # the admin role uses the Django admin
    [granted] = events(AuditAction.ROLE_GRANT)
    assert (granted.actor_username, granted.item_name) == ("system", maker.username)
    assert granted.details == {"roles": ["admin", "checker"]}

    update_user(maker.username, "--revoke", "admin")
    assert roles_of(fresh(maker)) == {"maker", "checker"}
    assert not fresh(maker).is_staff
    [revoked] = events(AuditAction.ROLE_REVOKE)
    assert revoked.details == {"roles": ["admin"]}
    # Granting what is held already changes nothing and records nothing.
    update_user(maker.username, "--grant", "maker")
    assert len(events(AuditAction.ROLE_GRANT)) == 1
    assert audit_chain_verify().ok


def test_a_deactivated_account_stops_at_once_everywhere_and_comes_back(api_client_user, maker):
    browser = Client()
    browser.force_login(maker)
    _, key = services.api_key_create(actor=None, user=api_client_user)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
    assert api.get("/api/v1/decisions/").status_code == 200

    for person in (maker, api_client_user):
        assert "deactivated" in update_user(person.username, "--deactivate")
    assert browser.get("/").status_code == 302  # the open sign-in has ended
    assert api.get("/api/v1/decisions/").status_code == 401
    assert len(events(AuditAction.USER_DEACTIVATE)) == 2

    update_user(api_client_user.username, "--reactivate")
    assert api.get("/api/v1/decisions/").status_code == 200
    assert [e.item_name for e in events(AuditAction.USER_REACTIVATE)] == [api_client_user.username]


def test_an_address_change_is_audited_without_the_address(checker):
    update_user(checker.username, "--email", "cy@bank.example")
    assert fresh(checker).email == "cy@bank.example"
    [event] = events(AuditAction.USER_UPDATE)
    assert event.details == {"changed": ["email"]}
    assert "cy@bank.example" not in str(event.details)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("nobody", "--grant", "checker"), "There is no user called 'nobody'."),
        (("maker-1",), "Say what to change"),
        (("maker-1", "--grant", "checker", "--revoke", "checker"), "Both granted and revoked"),
        (("maker-1", "--revoke", "maker"), "would hold no role; deactivate the account instead"),
        (("maker-1", "--email", "not an address"), "Enter a valid email address."),
        # All or nothing: the grant before the refused address is undone.
        (("maker-1", "--grant", "auditor", "--email", "nope"), "Enter a valid email address."),
    ],
)
def test_a_refused_change_says_why_and_changes_nothing(make_user, args, message):
    user = make_user("maker-1", Role.MAKER)
    before = AuditEvent.objects.count()
    with pytest.raises(CommandError, match=message):
        update_user(*args)
    assert roles_of(fresh(user)) == {"maker"} and fresh(user).is_active
    assert fresh(user).email == ""
    assert AuditEvent.objects.count() == before


def test_only_administrators_change_people_and_not_themselves_out(maker, checker, admin_user):
    for change in (
        lambda: services.user_grant_roles(actor=maker, user=maker, roles=["checker"]),
        lambda: services.user_revoke_roles(actor=checker, user=maker, roles=["maker"]),
        lambda: services.user_set_active(actor=checker, user=maker, active=False),
        lambda: services.user_set_email(actor=maker, user=checker, email="x@bank.example"),
    ):
        with pytest.raises(PermissionDenied):
            change()
    with pytest.raises(ValidationFailed, match="your own account"):
        services.user_set_active(actor=admin_user, user=admin_user, active=False)
    assert services.user_set_active(actor=admin_user, user=maker, active=False)
    assert events(AuditAction.USER_DEACTIVATE)[0].actor_username == admin_user.username


@pytest.fixture
def superuser(db):
    return get_user_model().objects.create_superuser("root", "root@bank.example", "x-long-pass-9")


def test_the_admin_shows_people_read_only_even_to_a_superuser(superuser, checker, maker):
    admin = Client()
    admin.force_login(superuser)
    page = admin.get(f"/admin/auth/user/{maker.pk}/change/")
    assert page.status_code == 200
    text = page.content.decode()
    assert "maker" in text and 'name="groups"' not in text and 'name="is_superuser"' not in text
    # Granting the checker role by posting the admin's form changes nothing.
    admin.post(
        f"/admin/auth/user/{maker.pk}/change/",
        {"username": maker.username, "groups": [1, 2, 3], "is_staff": "on"},
    )
    assert roles_of(fresh(maker)) == {"maker"} and not fresh(maker).is_staff
    # No adding people, no editing groups, no setting passwords here.
    assert admin.get("/admin/auth/user/add/").status_code == 403
    assert admin.get("/admin/auth/group/").status_code == 404
    password_page = admin.get(f"/admin/auth/user/{maker.pk}/password/", follow=True)
    assert 'name="password1"' not in password_page.content.decode()
    admin.post(
        f"/admin/auth/user/{maker.pk}/password/",
        {"password1": "x-new-pass-77", "password2": "x-new-pass-77"},
    )
    assert fresh(maker).check_password("correct-horse-battery-staple")
    assert not events(AuditAction.ROLE_GRANT)


def test_an_administrator_deactivates_people_from_the_admin(admin_user, maker):
    admin = Client()
    admin.force_login(admin_user)
    listing = admin.get("/admin/auth/user/")
    assert listing.status_code == 200 and "Deactivate selected accounts" in listing.content.decode()
    done = admin.post(
        "/admin/auth/user/",
        {"action": "deactivate", "_selected_action": [str(maker.pk)]},
        follow=True,
    )
    assert any("Deactivated 1 account(s)." in str(m) for m in done.context["messages"])
    assert not fresh(maker).is_active
    [event] = events(AuditAction.USER_DEACTIVATE)
    assert (event.actor_username, event.item_name) == (admin_user.username, maker.username)
    # Their own account is refused, with the reason.
    refused = admin.post(
        "/admin/auth/user/",
        {"action": "deactivate", "_selected_action": [str(admin_user.pk)]},
        follow=True,
    )
    assert any("your own account" in str(m) for m in refused.context["messages"])
    assert fresh(admin_user).is_active


def test_the_admins_password_link_leads_to_the_audited_page(admin_user):
    admin = Client()
    admin.force_login(admin_user)
    answer = admin.get("/admin/password_change/")
    assert answer.status_code == 302 and answer["Location"] == "/account/password/"
    changed = admin.post(
        "/admin/password_change/",
        {"old_password": "correct-horse-battery-staple", "new_password1": "x-new-9-pass"},
    )
    assert changed.status_code == 302
    assert fresh(admin_user).check_password("correct-horse-battery-staple")
