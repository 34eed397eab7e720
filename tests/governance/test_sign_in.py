"""Sign-in protection: repeated failures pause the user and address pair, and more of them
pause the user from everywhere or the address for everyone."""

from __future__ import annotations

from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.core.management import call_command
from django.test import Client, RequestFactory, override_settings
from django.utils import timezone

from governance.sign_in import client_address
from tests.arbiter.test_settings import run_manage

pytestmark = pytest.mark.django_db

PASSWORD = "correct horse battery staple"
LOGIN = "/accounts/login/"


@pytest.fixture
def alice(make_user):
    user = make_user("alice", "checker")
    user.set_password(PASSWORD)
    user.save()
    return user


def sign_in(password: str, *, username: str = "alice", address: str = "10.0.0.7"):
    return Client(REMOTE_ADDR=address).post(LOGIN, {"username": username, "password": password})


def test_five_failures_pause_the_user_from_that_address_and_say_so(alice, caplog):
    for _ in range(4):
        response = sign_in("guess")
        assert response.status_code == 200  # the form again, with its error
        assert "did not match" in response.content.decode()
    with caplog.at_level("WARNING", logger="governance.sign_in"):
        fifth = sign_in("guess")
    assert fifth.status_code == 429
    assert "sign-in locked out for alice from 10.0.0.7 after 5 failed attempts" in caplog.text
    page = fifth.content.decode()
    assert "Signing in is paused" in page
    assert "5 sign-ins as alice from this address failed in a row" in page
    assert "paused for 15 minutes" in page
    assert "axes_reset_username alice" in page

    # Even the right password is refused from there, before it is checked ...
    refused = sign_in(PASSWORD)
    assert refused.status_code == 429
    assert "_auth_user_id" not in refused.wsgi_request.session
    # ... but not from elsewhere, and not for anyone else from there.
    assert sign_in(PASSWORD, address="10.0.0.8").status_code == 302


def test_the_pause_ends_after_its_time_or_when_an_administrator_lifts_it(alice):
    for _ in range(5):
        sign_in("guess")
    assert sign_in(PASSWORD).status_code == 429
    AccessAttempt.objects.update(attempt_time=timezone.now() - timedelta(minutes=16))
    assert sign_in(PASSWORD).status_code == 302  # and a success clears the count

    for _ in range(5):
        sign_in("guess")
    assert sign_in(PASSWORD).status_code == 429
    call_command("axes_reset_username", "alice", stdout=None)
    assert sign_in(PASSWORD).status_code == 302


def test_a_success_clears_earlier_failures(alice):
    for _ in range(4):
        sign_in("guess")
    assert sign_in(PASSWORD).status_code == 302
    for _ in range(4):
        assert sign_in("guess").status_code == 200  # counting from zero again


@override_settings(LOGIN_ACCOUNT_FAILURE_LIMIT=12)
def test_guessing_one_password_from_many_addresses_pauses_the_user_everywhere(alice, caplog):
    # Four tries from each address stay under the per-address limit ...
    for host in range(2):
        for _ in range(4):
            assert sign_in("guess", address=f"10.1.0.{host}").status_code == 200
    for _ in range(3):
        assert sign_in("guess", address="10.1.0.2").status_code == 200
    with caplog.at_level("WARNING", logger="governance.sign_in"):
        twelfth = sign_in("guess", address="10.1.0.2")
    # ... but the twelfth from all of them together pauses alice everywhere.
    assert twelfth.status_code == 429
    assert "locked out for alice from every address after 12 failed attempts" in caplog.text
    page = twelfth.content.decode()
    assert "12 sign-ins as alice failed in the last 15 minutes" in page
    assert "paused everywhere" in page
    assert "axes_reset_username alice" in page
    # Even the right password, from an address that never failed, is refused unchecked.
    fresh = sign_in(PASSWORD, address="192.0.2.44")
    assert fresh.status_code == 429
    assert "_auth_user_id" not in fresh.wsgi_request.session
    assert "paused everywhere" in fresh.content.decode()
    # Other users are not affected, from any of those addresses.
    other = sign_in("guess", username="bob", address="10.1.0.2")
    assert other.status_code == 200
    # The pause ends with its time, or when an administrator lifts it.
    call_command("axes_reset_username", "alice", stdout=None)
    assert sign_in(PASSWORD, address="192.0.2.44").status_code == 302


@override_settings(LOGIN_ADDRESS_FAILURE_LIMIT=10)
def test_one_password_tried_against_many_users_pauses_that_address(alice, make_user, caplog):
    for number in range(9):  # spraying: one guess per user name, real or not
        assert sign_in("Winter2026!", username=f"user{number}").status_code == 200
    with caplog.at_level("WARNING", logger="governance.sign_in"):
        tenth = sign_in("Winter2026!", username="user9")
    assert tenth.status_code == 429
    assert "locked out for every user from 10.0.0.7 after 10 failed attempts" in caplog.text
    page = tenth.content.decode()
    assert "10 sign-ins from this address failed in the last 15 minutes" in page
    assert "axes_reset_ip 10.0.0.7" in page
    # alice's right password from there is refused too; from elsewhere it works.
    assert sign_in(PASSWORD).status_code == 429
    assert sign_in(PASSWORD, address="10.0.0.8").status_code == 302
    # Only failures within the lockout time count.
    AccessAttempt.objects.update(attempt_time=timezone.now() - timedelta(minutes=16))
    assert sign_in(PASSWORD).status_code == 302


@pytest.mark.parametrize("name", ["LOGIN_ACCOUNT_FAILURE_LIMIT", "LOGIN_ADDRESS_FAILURE_LIMIT"])
def test_the_wider_limits_cannot_be_below_the_pair_limit(name):
    result = run_manage("check", "--settings", "arbiter.settings.local", **{name: "3"})
    assert result.returncode != 0
    assert f"{name} must be at least LOGIN_FAILURE_LIMIT (5)" in result.stderr


def test_api_keys_are_not_counted_as_sign_ins(alice, api_client_user, admin_user):
    from rest_framework.test import APIClient

    from governance import services

    _, key = services.api_key_create(actor=admin_user, user=api_client_user)
    client = APIClient(REMOTE_ADDR="10.0.0.9")
    client.credentials(HTTP_AUTHORIZATION="Api-Key wrongprefix.secret")
    for _ in range(10):
        assert client.get("/api/v1/decisions/").status_code == 401
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
    assert client.get("/api/v1/decisions/").status_code == 200
    assert not AccessAttempt.objects.exists()


def test_the_client_address_behind_the_proxy_is_the_one_it_appended():
    request = RequestFactory().get(
        "/", REMOTE_ADDR="172.18.0.5", HTTP_X_FORWARDED_FOR="6.6.6.6, 203.0.113.9"
    )
    assert client_address(request) == "172.18.0.5"
    with override_settings(CLIENT_ADDRESS_FROM_PROXY=True):
        # The first address is whatever the client wrote; the last, the proxy's view.
        assert client_address(request) == "203.0.113.9"
        bare = RequestFactory().get("/", REMOTE_ADDR="172.18.0.5")
        assert client_address(bare) == "172.18.0.5"


def test_a_failed_sign_in_keeps_the_user_name_and_says_why(alice):
    page = sign_in("guess").content.decode()
    assert "The user name and password did not match (both are case-sensitive)." in page
    assert 'name="username" id="id_username" value="alice"' in page
    # The cursor goes where the person retypes: the password.
    password = page.split('id="id_password"')[1].split(">")[0]
    assert "autofocus" in password and 'aria-invalid="true"' in password
    empty = Client().post(LOGIN, {"username": "", "password": ""}).content.decode()
    assert "Give your user name and your password." in empty
