"""The review flow in a real browser (Debian's Chromium driven by Playwright).

A maker drafts a new strategy version by editing its JSON and submits it; a checker finds
it in the queue, reads the structured diff and the simulated impact on the deployment's
portfolio file, and rejects it with a reason; the maker drafts
again and submits; the maker, who also holds the checker role, gets no approve button on
their own version and a hand-made POST is refused by four eyes; the checker approves.
Each step leaves a screenshot in test-output/screenshots/.

Without Chromium this test fails rather than skips: CI installs it (.ci/run).
"""

from __future__ import annotations

import io
import json
import re

from playwright.sync_api import Page, expect

from decisions.demo_portfolio import synthetic_customers
from decisions.optimisation import optimisation_run_create, optimisation_run_execute
from governance.models import Version, VersionStatus
from tests.ui.browser import PASSWORD, log_in, log_out, shot


def draft_with_apr(page: Page, *, from_version: int, apr: float, note: str) -> None:
    """From the Strategies page: a new draft of cross-sell with the card's APR changed."""
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Strategies").click()
    page.get_by_role("link", name=f"New draft from v{from_version} of cross-sell").click()
    editor = page.get_by_label("Content (JSON)")
    content = json.loads(editor.input_value())
    card = next(a for a in content["actions"] if a["id"] == "card")
    card["attributes"]["apr"] = apr
    editor.fill(json.dumps(content, indent=2))
    page.get_by_label("Change note").fill(note)


def messages(page: Page):
    return page.get_by_role("list", name="Messages")


def test_maker_drafts_checker_rejects_then_approves_and_four_eyes_hold(
    page: Page, console_errors, live_server, cross_sell_deployment, maker_checker, checker
):
    base = live_server.url
    maker = maker_checker.username
    for person in (maker_checker, checker):
        person.set_password(PASSWORD)
        person.save(update_fields=["password"])
    # The deployment's portfolio: an earlier optimisation run on a population file, the
    # reference population a reviewer's impact simulation reuses.
    people = synthetic_customers(400, seed=3)
    people.insert(0, "customer_id", [f"P-{i}" for i in range(len(people))])
    run = optimisation_run_create(
        actor=maker_checker,
        deployment="cross-sell",
        population_file=io.BytesIO(people.to_csv(index=False).encode()),
        population_filename="portfolio-q3.csv",
        enqueue=False,
    )
    assert optimisation_run_execute(run.pk).status == "succeeded"

    # 1. The maker drafts v2 from the active v1, lowering the card's APR, and submits it.
    log_in(page, base, maker)
    shot(page, "01-maker-dashboard")
    draft_with_apr(page, from_version=1, apr=0.19, note="Card APR down to 19% to win back share.")
    shot(page, "02-maker-editing-json")
    page.get_by_role("button", name="Save draft").click()
    expect(messages(page)).to_contain_text("Draft v2 created.")
    expect(page.get_by_text("action card: apr changed from 0.24 to 0.19")).to_be_visible()
    page.get_by_role("button", name="Submit for review").click()
    expect(messages(page)).to_contain_text("strategy cross-sell v2 is now submitted for review")
    shot(page, "03-maker-submitted")
    log_out(page)

    # 2. The checker finds it in the queue, reads the diff, and rejects it with a reason.
    log_in(page, base, checker.username)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Reviews").click()
    expect(page.get_by_role("heading", name="Review queue")).to_be_visible()
    shot(page, "04-checker-queue")
    page.get_by_role("link", name="cross-sell v2").click()
    change = page.get_by_text("action card: apr changed from 0.24 to 0.19")
    expect(change).to_be_visible()
    shot(page, "05-checker-diff")
    impact = page.get_by_role("region", name="Simulated impact")
    expect(impact).to_contain_text("portfolio-q3.csv")
    impact.get_by_role("button", name="Simulate the impact").click()
    expect(impact.get_by_role("table", name="Portfolio of 400 customers")).to_be_visible()
    expect(impact.get_by_role("row", name=re.compile("^Expected value"))).to_be_visible()
    expect(impact.get_by_role("table", name="Customers per action")).to_be_visible()
    impact.scroll_into_view_if_needed()
    shot(page, "05b-checker-impact")
    page.get_by_role("button", name="Reject").click()  # no reason yet: refused
    expect(messages(page)).to_contain_text("A comment is required to reject.")
    page.get_by_label("Reason for your decision (required)").fill(
        "19% is below the APR floor agreed with risk."
    )
    page.get_by_role("button", name="Reject").click()
    expect(messages(page)).to_contain_text("strategy cross-sell v2 is now rejected")
    expect(
        page.get_by_role("cell", name="19% is below the APR floor agreed with risk.")
    ).to_be_visible()
    shot(page, "06-checker-rejected")
    log_out(page)

    # 3. The maker drafts v3 and submits it; as its author they cannot approve it.
    log_in(page, base, maker)
    draft_with_apr(page, from_version=2, apr=0.21, note="21%: at the agreed floor.")
    page.get_by_role("button", name="Save draft").click()
    expect(messages(page)).to_contain_text("Draft v3 created.")
    page.get_by_role("button", name="Submit for review").click()
    expect(messages(page)).to_contain_text("now submitted for review")
    expect(
        page.get_by_text("You wrote this version: another checker must review it (four eyes).")
    ).to_be_visible()
    expect(page.get_by_role("button", name="Approve")).to_have_count(0)
    shot(page, "07-maker-no-approve-button")

    # A hand-made POST (valid session and CSRF token) is refused by the server all the same.
    page.evaluate(
        """() => {
            const token = document.querySelector('input[name=csrfmiddlewaretoken]').value;
            const form = document.createElement('form');
            form.method = 'post';
            form.action = location.pathname + 'move/';
            for (const [name, value] of [['csrfmiddlewaretoken', token], ['move', 'approve']]) {
                const input = document.createElement('input');
                input.type = 'hidden'; input.name = name; input.value = value;
                form.appendChild(input);
            }
            document.body.appendChild(form);
            form.submit();
        }"""
    )
    expect(messages(page)).to_contain_text(
        f"Four eyes: {maker} wrote version 3 of cross-sell and so cannot approve it; "
        "another checker must."
    )
    shot(page, "08-maker-crafted-approve-refused")
    v3 = Version.objects.get(item__kind="strategy", item__name="cross-sell", number=3)
    assert v3.status == VersionStatus.SUBMITTED
    log_out(page)

    # 4. The checker approves v3.
    log_in(page, base, checker.username)
    page.get_by_role("link", name="cross-sell v3").first.click()
    expect(page.get_by_text("action card: apr changed from 0.24 to 0.21")).to_be_visible()
    page.get_by_label("Reason for your decision (required)").fill("21% is at the floor. Approved.")
    page.get_by_role("button", name="Approve").click()
    expect(messages(page)).to_contain_text("strategy cross-sell v3 is now approved")
    expect(page.locator("h1")).to_contain_text(re.compile(r"v3\s+Approved"))
    shot(page, "09-checker-approved")

    v3.refresh_from_db()
    assert (v3.status, v3.reviewed_by_id, v3.review_comment) == (
        VersionStatus.APPROVED,
        checker.pk,
        "21% is at the floor. Approved.",
    )
    assert v3.content["actions"][1]["attributes"]["apr"] == 0.21
    rejected = Version.objects.get(item__kind="strategy", item__name="cross-sell", number=2)
    assert rejected.status == VersionStatus.REJECTED
    # Every page of the flow kept to the Content-Security-Policy, and nothing failed.
    assert console_errors == []


def test_api_docs_and_admin_work_under_the_content_security_policy(
    page: Page, console_errors, live_server, admin_user
):
    """Swagger UI and the admin run their scripts from this server's files, so the policy
    (no inline script) leaves them working: the operations are listed, the admin opens."""
    admin_user.set_password(PASSWORD)
    admin_user.save(update_fields=["password"])
    log_in(page, live_server.url, admin_user.username)
    page.goto(f"{live_server.url}/api/docs/")
    expect(page.get_by_text("/api/v1/decisions/{decision_id}/replay/")).to_be_visible()
    page.get_by_text("/api/v1/decisions/{decision_id}/replay/").click()  # opens, by script
    expect(page.get_by_role("button", name="Try it out")).to_be_visible()
    shot(page, "10-api-docs")
    page.goto(f"{live_server.url}/admin/")
    expect(page.get_by_role("heading", name="Site administration")).to_be_visible()
    page.goto(f"{live_server.url}/admin/auth/user/")
    expect(page.get_by_role("link", name=admin_user.username)).to_be_visible()
    shot(page, "11-admin-users")
    assert console_errors == []
