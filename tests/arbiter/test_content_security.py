"""Every response tells the browser to run scripts from this server's files only.

A reviewer's page shows text that makers wrote (change notes, rule descriptions). The
templates escape it; the Content-Security-Policy is the second wall: even markup that got
through could not run a script, load one from elsewhere, or frame the page. The browser
test (tests/ui/test_review_flow_browser.py) checks that the pages break no rule of it.
"""

from __future__ import annotations

import pytest
from django.contrib.staticfiles import finders
from django.test import Client

pytestmark = pytest.mark.django_db

UNSAFE = ("'unsafe-inline'", "'unsafe-eval'", "*", "data:", "http:", "https:")


def policy_of(response) -> dict[str, list[str]]:
    header = response.headers.get("Content-Security-Policy")
    assert header, f"no Content-Security-Policy on {response.request['PATH_INFO']}"
    directives = {}
    for part in header.split(";"):
        name, *values = part.split()
        directives[name] = values
    return directives


@pytest.mark.parametrize(
    "path",
    [
        "/",  # the dashboard
        "/reviews/",
        "/decisions/",
        "/api/docs/",
        "/admin/",
        "/no-such-page/",
    ],
)
def test_every_page_and_answer_allows_only_this_servers_scripts(path, admin_user):
    browser = Client()
    browser.force_login(admin_user)
    policy = policy_of(browser.get(path))
    assert policy["script-src"] == ["'self'"]
    assert policy["default-src"] == ["'self'"]
    for directive in ("script-src", "default-src"):
        assert not set(policy[directive]) & set(UNSAFE), policy[directive]
    assert policy["object-src"] == ["'none'"]
    assert policy["base-uri"] == ["'none'"]
    assert policy["frame-ancestors"] == ["'none'"]  # no clickjacking of approve buttons
    assert policy["form-action"] == ["'self'"]


@pytest.mark.parametrize(
    "path", ["/api/v1/registry/strategies/", "/api/v1/decisions/?format=csv", "/api/v1/nothing/"]
)
def test_the_api_gets_the_strictest_policy(path, auditor):
    """JSON and CSV are never pages: nothing may load from them, nothing may frame them."""
    browser = Client()
    browser.force_login(auditor)
    answer = browser.get(path)
    assert answer["Content-Security-Policy"] == "default-src 'none'; frame-ancestors 'none'"


def test_the_sign_in_page_has_the_policy_too():
    assert policy_of(Client().get("/accounts/login/"))["script-src"] == ["'self'"]


def test_the_site_icon_is_its_own_file(maker):
    answer = Client().get("/favicon.ico")  # asked for by pages that name no icon
    assert answer.status_code == 302
    assert answer["Location"].endswith("favicon.svg")
    assert finders.find("favicon.svg")
    browser = Client()
    browser.force_login(maker)
    page = browser.get("/").content.decode()
    assert '<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">' in page
