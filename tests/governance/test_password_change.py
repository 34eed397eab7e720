"""A person changes their own password on the pages: the current one first, Django's
rules for the new one, an audit event and an e-mail; their other sign-ins end, and guessing
the current one from an open sign-in counts as failed sign-ins."""

from __future__ import annotations

import io
import re
import sys

import pytest
from django.conf import settings
from django.core import mail
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client

from governance import services
from governance.audit import audit_chain_verify
from governance.exceptions import PermissionDenied, ValidationFailed
from governance.models import AuditAction, AuditEvent
from governance.roles import Role

PASSWORD = "correct-horse-battery-staple"  # tests/conftest.py gives every user this one

pytestmark = pytest.mark.django_db

PAGE = "/account/password/"
NEW = "a-longer-phrase-of-four-words"


def signed_in(user, address: str = "10.0.0.7") -> Client:
    browser = Client(REMOTE_ADDR=address)
    answer = browser.post("/accounts/login/", {"username": user.username, "password": PASSWORD})
    assert answer.status_code == 302, answer.content
    return browser


def change(browser: Client, current: str, new: str = NEW, again: str | None = None):
    return browser.post(
        PAGE,
        {
            "current_password": current,
            "new_password": new,
            "new_password_again": new if again is None else again,
        },
    )


@pytest.fixture
def cy(checker):
    checker.email = "cy@bank.example"
    checker.save(update_fields=["email"])
    return checker


def test_every_page_links_to_it_and_it_shows_the_rules(cy):
    browser = signed_in(cy)
    assert f'href="{PAGE}"' in browser.get("/").content.decode()
    page = browser.get(PAGE).content.decode()
    assert 'autocomplete="current-password"' in page
    assert "at least 8 characters" in page  # Django's validators, as the person will meet them


def test_a_change_keeps_this_sign_in_ends_the_others_and_is_told(
    cy, django_capture_on_commit_callbacks
):
    here, elsewhere = signed_in(cy), signed_in(cy, "10.0.0.9")
    with django_capture_on_commit_callbacks(execute=True):
        answer = change(here, PASSWORD)
    assert answer.status_code == 302 and answer["Location"] == "/"
    assert "Your password has been changed" in here.get("/").content.decode()
    # The other browser's sign-in was made with the old password: it has ended.
    assert elsewhere.get("/").status_code == 302
    # The new password signs in; the old one no longer does.
    assert sign_in_answer(cy, NEW) == 302
    assert sign_in_answer(cy, PASSWORD) == 200  # the form again: did not match

    event = AuditEvent.objects.get(action=AuditAction.PASSWORD_CHANGE)
    assert (event.actor_username, event.item_name) == (cy.username, cy.username)
    assert NEW not in str(event.details) and audit_chain_verify().ok

    [notice] = mail.outbox
    assert notice.to == ["cy@bank.example"]
    assert notice.subject == "[Arbiter] Your password was changed"
    assert "from 10.0.0.7" in notice.body and "tell Arbiter's administrators" in notice.body
    assert NEW not in notice.body


@pytest.mark.parametrize(
    ("current", "new", "again", "field", "message"),
    [
        ("not-it", NEW, None, "current_password", "That is not your current password."),
        (PASSWORD, "short", None, "new_password", "This password is too short."),
        (PASSWORD, "password123", None, "new_password", "This password is too common."),
        (PASSWORD, PASSWORD, None, "new_password", "different from the current one"),
        (PASSWORD, NEW, NEW + "x", "new_password_again", "The two new passwords differ."),
    ],
)
def test_a_refused_change_says_which_field_and_why_and_changes_nothing(
    cy, current, new, again, field, message
):
    browser = signed_in(cy)
    answer = change(browser, current, new, again)
    assert answer.status_code == 400
    page = answer.content.decode()
    assert "The password was not changed." in page
    assert message in page
    assert f'id="id_{field}" autocomplete' in page or f'id="id_{field}"' in page
    assert 'aria-invalid="true"' in page
    cy.refresh_from_db()
    assert cy.check_password(PASSWORD)
    assert not AuditEvent.objects.filter(action=AuditAction.PASSWORD_CHANGE).exists()
    assert mail.outbox == []
    assert browser.get("/").status_code == 200  # still signed in


def test_guessing_the_current_password_ends_the_sign_in_and_locks_the_name_out(cy):
    browser = signed_in(cy)
    limit = settings.AXES_FAILURE_LIMIT
    for _ in range(limit - 1):
        assert change(browser, "guess").status_code == 400
    locked = change(browser, "guess")
    assert locked.status_code == 429
    assert "Signing in is paused" in locked.content.decode()
    # The open sign-in has ended, and the right password is refused from this address too.
    assert browser.get("/").status_code == 302
    assert sign_in_answer(cy, PASSWORD, "10.0.0.7") == 429
    cy.refresh_from_db()
    assert cy.check_password(PASSWORD)


def sign_in_answer(user, password: str, address: str = "10.0.0.8") -> int:
    answer = Client(REMOTE_ADDR=address).post(
        "/accounts/login/", {"username": user.username, "password": password}
    )
    return answer.status_code


def test_the_service_holds_the_rules_for_any_caller(cy, api_client_user):
    with pytest.raises(ValidationFailed) as refused:
        services.password_change(user=cy, current_password="nope", new_password=NEW)
    assert refused.value.details == {"current_password": ["That is not your current password."]}
    api_client_user.set_unusable_password()
    api_client_user.save(update_fields=["password"])
    with pytest.raises(PermissionDenied):
        services.password_change(user=api_client_user, current_password="", new_password=NEW)


def test_people_without_a_sign_in_or_a_reviewer_role_cannot_use_the_page(api_client_user):
    assert Client().get(PAGE)["Location"] == f"/accounts/login/?next={PAGE}"
    browser = Client()
    browser.force_login(api_client_user)
    assert browser.get(PAGE).status_code == 403


def run_reset(monkeypatch, *args: str, password: str = NEW + "\n") -> str:
    monkeypatch.setattr(sys, "stdin", io.StringIO(password))
    out = io.StringIO()
    call_command("reset_password", *args, stdout=out)
    return out.getvalue()


def test_an_operator_resets_a_lost_password_which_ends_the_sign_ins_and_is_told(
    cy, monkeypatch, django_capture_on_commit_callbacks
):
    browser = signed_in(cy)
    with django_capture_on_commit_callbacks(execute=True):
        output = run_reset(monkeypatch, cy.username, "--password-stdin")
    assert f"Reset the password of {cy.username}" in output
    assert browser.get("/").status_code == 302  # the old sign-in has ended
    assert sign_in_answer(cy, NEW) == 302
    event = AuditEvent.objects.get(action=AuditAction.PASSWORD_RESET)
    assert (event.actor_username, event.item_name) == ("system", cy.username)
    [notice] = mail.outbox
    assert notice.subject == "[Arbiter] Your password was reset by an administrator"
    assert "change it at once" in notice.body


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (("cy-checker",), NEW + "\n", "--password-stdin"),
        (("nobody", "--password-stdin"), NEW + "\n", "There is no user called 'nobody'."),
        (("cy-checker", "--password-stdin"), "\n", "No password was given"),
        (("cy-checker", "--password-stdin"), "12345678\n", "entirely numeric"),
        (
            ("cy-checker", "--password-stdin"),
            b"\xff\xfe\xe9abcdefgh\n".decode("utf-8", "surrogateescape"),
            "The password on standard input is not valid UTF-8 text",
        ),
    ],
)
def test_a_refused_reset_says_why_and_changes_nothing(make_user, monkeypatch, args, stdin, message):
    user = make_user("cy-checker", Role.CHECKER)
    with pytest.raises(CommandError, match=re.escape(message)):
        run_reset(monkeypatch, *args, password=stdin)
    user.refresh_from_db()
    assert user.check_password(PASSWORD)
    assert not AuditEvent.objects.filter(action=AuditAction.PASSWORD_RESET).exists()


def test_only_administrators_reset_passwords(cy, maker, admin_user):
    with pytest.raises(PermissionDenied):
        services.password_reset(actor=maker, user=cy, new_password=NEW)
    with pytest.raises(ValidationFailed, match="not valid UTF-8"):
        services.password_reset(actor=admin_user, user=cy, new_password="\udcff" + NEW)
    services.password_reset(actor=admin_user, user=cy, new_password=NEW)
    cy.refresh_from_db()
    assert cy.check_password(NEW)


def test_every_problem_is_named_at_once(cy):
    answer = change(signed_in(cy), "not-it", "short")
    page = answer.content.decode()
    assert "That is not your current password." in page
    assert "This password is too short." in page
