"""A sign-in to the pages ends after SESSION_IDLE_MINUTES without a request, and when the
browser closes; beat deletes the ended ones."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.conf import settings
from django.contrib.sessions.models import Session
from django.test import Client
from django.utils import timezone

from governance.tasks import sessions_clear_task
from tests.arbiter.test_settings import run_manage

pytestmark = pytest.mark.django_db
PASSWORD = "idle-minutes-passphrase-7"


def signed_in(user) -> Client:
    user.set_password(PASSWORD)
    user.save(update_fields=["password"])
    browser = Client()
    answer = browser.post("/accounts/login/", {"username": user.username, "password": PASSWORD})
    assert answer.status_code == 302, answer.content
    return browser


def the_session(browser: Client) -> Session:
    return Session.objects.get(session_key=browser.cookies[settings.SESSION_COOKIE_NAME].value)


def test_a_sign_in_lasts_thirty_idle_minutes_in_a_browser_session_cookie(checker):
    assert settings.SESSION_COOKIE_AGE == 30 * 60
    browser = signed_in(checker)
    cookie = browser.cookies[settings.SESSION_COOKIE_NAME]
    assert not cookie["max-age"] and not cookie["expires"]  # gone when the browser closes
    left = the_session(browser).expire_date - timezone.now()
    assert timedelta(minutes=29) < left <= timedelta(minutes=30)


def test_each_request_restarts_the_clock(checker):
    browser = signed_in(checker)
    session = the_session(browser)
    # Twenty idle minutes later (as the server sees it: ten minutes left), a page view...
    Session.objects.filter(pk=session.pk).update(expire_date=timezone.now() + timedelta(minutes=10))
    assert browser.get("/reviews/").status_code == 200
    # ...gives the full thirty minutes again.
    left = the_session(browser).expire_date - timezone.now()
    assert left > timedelta(minutes=29)


def test_after_the_idle_time_the_page_asks_for_the_password_again(checker):
    browser = signed_in(checker)
    Session.objects.filter(pk=the_session(browser).pk).update(
        expire_date=timezone.now() - timedelta(seconds=1)
    )
    answer = browser.get("/reviews/")
    assert answer.status_code == 302
    assert answer["Location"] == "/accounts/login/?next=/reviews/"
    # The same cookie, replayed, is no sign-in either.
    assert browser.get("/").status_code == 302


def test_beat_deletes_ended_sign_ins_and_keeps_live_ones(checker, maker):
    ended, live = signed_in(checker), signed_in(maker)
    Session.objects.filter(pk=the_session(ended).pk).update(
        expire_date=timezone.now() - timedelta(minutes=1)
    )
    assert Session.objects.count() == 2
    assert sessions_clear_task() == {"cleared": True}
    assert list(Session.objects.values_list("pk", flat=True)) == [the_session(live).pk]
    assert live.get("/").status_code == 200


def test_an_idle_time_below_a_minute_is_refused():
    result = run_manage("check", "--settings", "arbiter.settings.local", SESSION_IDLE_MINUTES="0")
    assert result.returncode != 0
    assert "SESSION_IDLE_MINUTES must be at least 1" in result.stderr
