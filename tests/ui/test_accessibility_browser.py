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
from playwright.sync_api import Page

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
        "admin": ["/status/"],
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
