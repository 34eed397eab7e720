"""Every kind of page passes axe-core's automated accessibility rules (WCAG 2.x A and AA,
and axe's best practices) in Chromium, and reflows to 320 px without sideways scrolling,
as the people who review credit decisions, some with a screen reader, a keyboard only or
a magnified screen, would meet them.

axe finds what a machine can (names, labels, contrast, landmarks, focusable scrolling
regions); the page tests (tests/ui/test_review_pages.py) check labels and landmarks
too. Without Chromium this fails rather than skips: CI installs it (.ci/run).
"""

from __future__ import annotations

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Page, expect

from tests.ui.browser import PASSWORD, log_in, log_out

AXE = Axe()
RULES = {"runOnly": {"type": "tag", "values": ["wcag2a", "wcag2aa", "wcag21aa", "best-practice"]}}


def violations(page: Page) -> list[str]:
    found = AXE.run(page, options={**RULES, "resultTypes": ["violations"]}).response
    return [
        f"{page.url}: {v['id']} ({v['impact']}): {v['help']} at "
        + ", ".join(str(node["target"]) for node in v["nodes"][:3])
        for v in found["violations"]
    ]


def sideways(page: Page, width: int) -> list[str]:
    """WCAG 1.4.10 (reflow): at 320 px nothing but a data table may scroll sideways, and
    a table scrolls inside its own frame, which the keyboard can reach."""
    wide = page.evaluate("document.documentElement.scrollWidth")
    return [f"{width} px: {page.url} is {wide} px wide"] if wide > width else []


@pytest.fixture
def people(world, maker, checker, admin_user):
    for person in (maker, checker, admin_user):
        person.set_password(PASSWORD)
        person.save(update_fields=["password"])
    return {"maker": maker, "checker": checker, "admin": admin_user}


def test_the_pages_pass_axe(page: Page, console_errors, live_server, world, people):
    base = live_server.url
    page.goto(f"{base}/accounts/login/")
    found = violations(page)
    page.set_viewport_size({"width": 320, "height": 900})
    found += violations(page) + sideways(page, 320)
    pages = {
        "checker": [
            "/",
            "/reviews/",
            "/registry/",
            "/registry/strategies/",
            f"/registry/strategies/cross-sell/v{world.strategy_v2.number}/",  # diff, impact
            "/registry/strategies/cross-sell/v1/",  # a wide table of actions
            "/registry/models/",
            "/audit/",
            "/decisions/",
            f"/decisions/{world.decision.decision_id}/",
            "/optimisation/",
            f"/optimisation/{world.run.pk}/",
            "/monitoring/",
            "/monitoring/alerts/",
            "/monitoring/reports/",
            "/drift/",
        ],
        "maker": [
            "/",
            "/registry/strategies/cross-sell/new/?from=1",  # the JSON editor
            f"/registry/constraint-sets/cross-sell-limits/v{world.limits_draft.number}/edit/",
            "/optimisation/",  # with the form that starts a run
        ],
        "admin": ["/status/", "/account/password/"],
    }
    for role, paths in pages.items():
        log_in(page, base, people[role].username)
        for path in paths:
            for width in (1280, 320):  # a desktop, and 400% zoom or a small phone
                page.set_viewport_size({"width": width, "height": 900})
                answer = page.goto(f"{base}{path}")
                assert answer is not None and answer.status == 200, (path, answer.status)
                found += [f"{width} px: {problem}" for problem in violations(page)]
                found += sideways(page, width)
        log_out(page)
    assert found == [], "\n".join(found)
    assert console_errors == []


def test_changing_a_password_with_a_keyboard_and_a_screen_reader(
    page: Page, console_errors, live_server, checker
):
    """The form's refusals name the fields (an error summary that links to them, each field
    marked invalid and described by its error) and pass axe; the change then holds."""
    base, new = live_server.url, "a-longer-phrase-of-four-words"
    checker.set_password(PASSWORD)
    checker.save(update_fields=["password"])
    log_in(page, base, checker.username)
    page.get_by_role("link", name="Change password").click()
    expect(page.get_by_role("heading", name="Change your password")).to_be_visible()

    page.get_by_label("Current password").fill("not-it")
    page.get_by_label("New password", exact=True).fill("short")
    page.get_by_label("New password again").fill("short")
    page.get_by_role("button", name="Change password").click()
    summary = page.get_by_role("alert")
    expect(summary).to_contain_text("The password was not changed.")
    expect(summary).to_be_focused()  # a screen reader starts at the problems
    expect(summary).to_contain_text("That is not your current password.")
    current = page.get_by_label("Current password")
    expect(current).to_have_attribute("aria-invalid", "true")
    expect(current).to_have_accessible_description("That is not your current password.")
    assert violations(page) == []

    summary.get_by_role("link", name="Current password").click()
    expect(current).to_be_focused()
    current.fill(PASSWORD)
    page.get_by_label("New password", exact=True).fill(new)
    page.get_by_label("New password again").fill(new)
    page.get_by_role("button", name="Change password").click()
    expect(page.get_by_role("list", name="Messages")).to_contain_text(
        "Your password has been changed."
    )
    log_out(page)
    page.get_by_label("User name").fill(checker.username)
    page.get_by_label("Password").fill(new)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
    # The refused form came back as 400, as a refused draft does; nothing else failed.
    assert console_errors == [
        "Failed to load resource: the server responded with a status of 400 (Bad Request)"
    ]


def test_a_refused_draft_takes_the_keyboard_to_its_problems(
    page: Page, console_errors, live_server, world, people
):
    """After a refusal the focus is on the list of problems, not at the top of the page, so
    that a keyboard or screen-reader user meets them first; the content they typed stays."""
    base = live_server.url
    log_in(page, base, people["maker"].username)
    page.goto(f"{base}/registry/strategies/cross-sell/new/?from=1")
    editor = page.get_by_label("Content (JSON)")
    editor.fill('{"actions": []}')
    page.get_by_role("button", name="Save draft").click()
    summary = page.get_by_role("alert")
    expect(summary).to_contain_text("The strategy was not saved")
    expect(summary).to_be_focused()
    expect(editor).to_have_value('{"actions": []}')
    assert violations(page) == []
    assert console_errors == [
        "Failed to load resource: the server responded with a status of 400 (Bad Request)"
    ]
