"""Sign-in protection: repeated failures for one user from one address pause that pair."""

from __future__ import annotations

from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.core.management import call_command
from django.test import Client, RequestFactory, override_settings
from django.utils import timezone

from governance.sign_in import client_address

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


def test_api_keys_are_not_counted_as_sign_ins(alice, api_client_user, admin_user):
    from rest_framework.test import APIClient

    from governance import services

    _, key = services.api_key_create(actor=admin_user, user=api_client_user)
    client = APIClient(REMOTE_ADDR="10.0.0.9")
    client.credentials(HTTP_AUTHORIZATION="Api-Key wrongprefix.secret")
    for _ in range(10):
        assert client.get("/api/v1/registry/notes/").status_code == 401
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
    assert client.get("/api/v1/registry/notes/").status_code == 200
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
