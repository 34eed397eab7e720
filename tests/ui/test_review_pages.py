"""The reviewer pages as a person uses them (Django's test client): four eyes, the diff,
drafts with the service's field errors, escaping, CSRF, the audit trail, accessibility."""

from __future__ import annotations

import datetime as dt
import html
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from decisions.demo_portfolio import cross_sell_strategy
from governance import services
from governance.models import AuditEvent, ChainHead, Version, VersionStatus
from tests.decisions.conftest import go_live
from tests.governance.factories import note_version
from tests.ui.conftest import World

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]
STRATEGY = "/registry/strategies/cross-sell"
XSS = "<script>alert(1)</script>"


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def text(response) -> str:
    """The page's visible text, tags removed and entities decoded, spaces collapsed."""
    body = re.sub(r"<[^>]+>", " ", response.content.decode())
    return re.sub(r"\s+", " ", html.unescape(body))


def submitted_by(user, *, revision: int = 2, apr: float | None = None) -> Version:
    content = cross_sell_strategy(model_name="take-up", model_version=1, revision=revision)
    if apr is not None:
        content["actions"][1]["attributes"]["apr"] = apr
    version = services.version_create(
        actor=user, kind="strategy", name="cross-sell", content=content
    )
    return services.version_submit(actor=user, version=version)


# --- four eyes ----------------------------------------------------------------------


def test_the_author_who_is_also_a_checker_gets_a_note_and_no_review_buttons(
    cross_sell_deployment, maker_checker
):
    version = submitted_by(maker_checker)
    page = logged_in(maker_checker).get(f"{STRATEGY}/v{version.number}/")
    assert page.status_code == 200
    assert "You wrote this version: another checker must review it (four eyes)." in text(page)
    assert b'value="approve"' not in page.content
    assert b'value="reject"' not in page.content


def test_a_crafted_approve_by_the_author_is_refused_with_the_four_eyes_message(
    cross_sell_deployment, maker_checker
):
    version = submitted_by(maker_checker)
    response = logged_in(maker_checker).post(
        f"{STRATEGY}/v{version.number}/move/",
        {"move": "approve", "comment": "my own work is fine"},
        follow=True,
    )
    assert response.status_code == 200
    (message,) = messages_of(response)
    assert message.startswith("Four eyes: sam-senior wrote version 2 of cross-sell")
    version.refresh_from_db()
    assert version.status == VersionStatus.SUBMITTED
    assert not AuditEvent.objects.filter(action="approve", version_number=version.number).exists()


def test_a_checker_who_only_submitted_is_kept_out_too(cross_sell_deployment, maker, maker_checker):
    content = cross_sell_strategy(model_name="take-up", model_version=1, revision=2)
    draft = services.version_create(
        actor=maker, kind="strategy", name="cross-sell", content=content
    )
    services.version_submit(actor=maker_checker, version=draft)
    page = logged_in(maker_checker).get(f"{STRATEGY}/v2/")
    assert "You submitted this version: another checker must review it" in text(page)
    assert b'value="approve"' not in page.content


def test_another_checker_sees_the_diff_and_approves(world: World, checker):
    client = logged_in(checker)
    page = client.get(f"{STRATEGY}/v2/")
    assert b'value="approve"' in page.content and b'value="reject"' in page.content
    assert "Compared with v1 , which the active deployment cross-sell uses." in text(page)
    assert "action premium-card added" in text(page)
    # An approval needs its reason too: it is the approval trail a regulator reads.
    response = client.post(f"{STRATEGY}/v2/move/", {"move": "approve", "comment": ""}, follow=True)
    assert messages_of(response) == ["A comment is required to approve."]
    world.strategy_v2.refresh_from_db()
    assert world.strategy_v2.status == VersionStatus.SUBMITTED
    response = client.post(
        f"{STRATEGY}/v2/move/",
        {"move": "approve", "comment": "Premium card priced within appetite."},
        follow=True,
    )
    assert messages_of(response) == ["Approve: strategy cross-sell v2 is now approved."]
    trail = text(response)
    assert "chen-checker Approved submitted → approved" in trail
    world.strategy_v2.refresh_from_db()
    assert world.strategy_v2.status == VersionStatus.APPROVED
    assert world.strategy_v2.reviewed_by == checker


def _live_apr_lowered(maker, checker) -> Version:
    """Strategy cross-sell v2 lowers the card's APR from 0.24 to 0.22 and is approved, not
    activated; deployment cross-sell v2 decides with it. v1 stays marked active."""
    content = cross_sell_strategy(model_name="take-up", model_version=1)
    content["actions"][1]["attributes"]["apr"] = 0.22
    lowered = services.version_create(
        actor=maker, kind="strategy", name="cross-sell", content=content
    )
    lowered = services.version_submit(actor=maker, version=lowered)
    lowered = services.version_approve(actor=checker, version=lowered, comment="Cheaper card.")
    deployment = Version.objects.get(item__kind="deployment", item__name="cross-sell", number=1)
    content = {**deployment.content, "strategy": {"name": "cross-sell", "version": 2}}
    moved = services.version_create(
        actor=maker, kind="deployment", name="cross-sell", content=content
    )
    go_live(moved, maker=maker, checker=checker)
    return lowered


def test_the_diff_compares_with_what_the_active_deployment_uses_not_the_active_version(
    cross_sell_deployment, maker, checker, checker2
):
    """A draft written from v1 (still active in the registry) puts the live 22% APR back to
    24%: compared with v1 the change would not show; compared with v2, which the
    deployment decides with, it does."""
    _live_apr_lowered(maker, checker)
    undo = submitted_by(maker, revision=1)
    assert undo.number == 3
    page = text(logged_in(checker2).get(f"{STRATEGY}/v3/"))
    assert "Compared with v2 , which the active deployment cross-sell uses." in page
    assert "action card: apr changed from 0.22 to 0.24" in page
    assert "the active version" not in page.split("What changed")[1]


def test_deployments_that_use_different_versions_are_all_named(
    cross_sell_deployment, maker, checker, checker2
):
    _live_apr_lowered(maker, checker)
    other = services.version_create(
        actor=maker, kind="deployment", name="cross-sell-b", content=cross_sell_deployment.content
    )
    go_live(other, maker=maker, checker=checker)
    submitted_by(maker, revision=1)
    page = text(logged_in(checker2).get(f"{STRATEGY}/v3/"))
    assert "Compared with v2 , which the active deployment cross-sell uses." in page
    assert (
        "The active deployments use other versions too: v1 (which the active deployment "
        "cross-sell-b uses); this page compares with the first."
    ) in page


def test_a_maker_reads_the_queue_and_the_version_but_has_no_review_buttons(world: World, maker2):
    client = logged_in(maker2)
    queue = client.get("/reviews/")
    assert "You can read the queue; approving and rejecting need the checker role." in text(queue)
    page = client.get(f"{STRATEGY}/v2/")
    assert b'value="approve"' not in page.content
    assert "four eyes" not in text(page)


def test_reject_needs_a_reason_then_records_it(world: World, checker):
    client = logged_in(checker)
    refused = client.post(f"{STRATEGY}/v2/move/", {"move": "reject", "comment": "  "}, follow=True)
    assert messages_of(refused) == ["A comment is required to reject."]
    world.strategy_v2.refresh_from_db()
    assert world.strategy_v2.status == VersionStatus.SUBMITTED
    done = client.post(
        f"{STRATEGY}/v2/move/", {"move": "reject", "comment": "Premium APR too low"}, follow=True
    )
    assert "Reject: strategy cross-sell v2 is now rejected." in messages_of(done)
    assert "Premium APR too low" in text(done)
    world.strategy_v2.refresh_from_db()
    assert world.strategy_v2.status == VersionStatus.REJECTED


def test_submit_activate_and_a_refused_move_through_the_pages(world: World, maker, checker):
    checker_client = logged_in(checker)
    checker_client.post(f"{STRATEGY}/v2/move/", {"move": "approve", "comment": "Reviewed."})
    page = checker_client.get(f"{STRATEGY}/v2/")
    assert b'value="activate"' in page.content and b'value="retire"' in page.content
    # The live deployment decides with v1: activating v2 would retire it under it.
    refused = checker_client.post(
        f"{STRATEGY}/v2/move/", {"move": "activate", "confirm": "yes"}, follow=True
    )
    assert messages_of(refused) == [
        "Activating strategy cross-sell v2 would retire v1, and deployment cross-sell v1 "
        "decides with it. Activate a deployment version that uses v2 first; the active "
        "deployment decides which version runs."
    ]
    world.strategy_v1.refresh_from_db()
    assert world.strategy_v1.status == VersionStatus.ACTIVE
    # Once the deployment uses v2, v2 goes live and v1 retires.
    moved = services.version_create(
        actor=maker,
        kind="deployment",
        name="cross-sell",
        content={**world.deployment.content, "strategy": {"name": "cross-sell", "version": 2}},
    )
    services.version_submit(actor=maker, version=moved)
    services.version_approve(actor=checker, version=moved, comment="Uses v2.")
    services.version_activate(actor=checker, version=moved)
    done = checker_client.post(
        f"{STRATEGY}/v2/move/", {"move": "activate", "confirm": "yes"}, follow=True
    )
    assert messages_of(done) == ["Activate: strategy cross-sell v2 is now active."]
    world.strategy_v1.refresh_from_db()
    assert world.strategy_v1.status == VersionStatus.RETIRED
    again = checker_client.post(f"{STRATEGY}/v2/move/", {"move": "activate"}, follow=True)
    assert messages_of(again)[0].startswith("Cannot activate version 2 of cross-sell: it is active")

    limits = "/registry/constraint-sets/cross-sell-limits/v2/"
    maker_page = logged_in(maker).get(limits)
    assert b'value="submit"' in maker_page.content
    submitted = logged_in(maker).post(
        limits + "move/", {"move": "submit", "comment": "Ready"}, follow=True
    )
    assert messages_of(submitted) == [
        "Submit for review: constraint set cross-sell-limits v2 is now submitted for review."
    ]
    world.limits_draft.refresh_from_db()
    assert world.limits_draft.status == VersionStatus.SUBMITTED


def test_admins_activate_and_retire_but_never_review(world: World, admin_user, checker):
    client = logged_in(admin_user)
    submitted = client.get(f"{STRATEGY}/v2/")
    assert b'value="approve"' not in submitted.content and "four eyes" not in text(submitted)
    logged_in(checker).post(f"{STRATEGY}/v2/move/", {"move": "approve", "comment": "Reviewed."})
    approved = client.get(f"{STRATEGY}/v2/")
    assert b'value="activate"' in approved.content and b'value="retire"' in approved.content
    active = client.get(f"{STRATEGY}/v1/")
    assert b'value="retire"' in active.content and b'value="activate"' not in active.content


def test_activating_a_deployment_says_live_decisions_switch_and_needs_a_tick(
    world: World, maker, checker, checker2
):
    # One click used to switch the channel's live decisions and retire v1 for good.
    v2 = services.version_create(
        actor=maker,
        kind="deployment",
        name="cross-sell",
        content={**world.deployment.content, "prices": {"marketing_budget": 3.0}},
    )
    services.version_submit(actor=maker, version=v2)
    services.version_approve(actor=checker2, version=v2, comment="New price reviewed.")
    client = logged_in(checker)
    page = "/registry/deployments/cross-sell/v2/"
    response = client.get(page)
    warning = (
        "Live decisions on channel cross-sell switch to v2 at once; v1, active now, will be "
        "retired and cannot be activated again."
    )
    shown = text(response)
    assert warning in shown
    assert shown.index(warning) < shown.index("Activate cross-sell v2")
    assert "I understand the active version will be retired" in shown
    assert response.content.decode().count('value="activate"') == 1

    # Without the tick (a browser asks first; a hand-made post is refused here) nothing
    # moves, the page says why, and the comment typed comes back.
    refused = client.post(f"{page}move/", {"move": "activate", "comment": "Q4 price"}, follow=True)
    assert messages_of(refused) == [
        "Nothing was activated: tick “I understand the active version will be retired” to "
        f"confirm. {warning}"
    ]
    assert 'id="activate-comment" name="comment" rows="3" maxlength="5000">Q4 price<' in (
        refused.content.decode()
    )
    world.deployment.refresh_from_db()
    v2.refresh_from_db()
    assert (world.deployment.status, v2.status) == (VersionStatus.ACTIVE, VersionStatus.APPROVED)
    api = APIClient()
    api.force_authenticate(world.decision.client)
    assert api.get("/api/v1/deployments/cross-sell/").json()["version"] == 1

    done = client.post(
        f"{page}move/", {"move": "activate", "comment": "Q4 price", "confirm": "yes"}, follow=True
    )
    assert messages_of(done) == ["Activate: deployment cross-sell v2 is now active."]
    world.deployment.refresh_from_db()
    assert world.deployment.status == VersionStatus.RETIRED
    assert api.get("/api/v1/deployments/cross-sell/").json()["version"] == 2


def test_activating_with_nothing_active_needs_no_tick_and_other_kinds_say_what_retires(
    world: World, checker, checker2
):
    # Nothing to retire: activation stays a plain button beside the comment.
    note = note_version(
        maker=world.strategy_v2.author, checker=checker2, status=VersionStatus.APPROVED
    )
    page = logged_in(checker).get(f"/registry/notes/{note.item.name}/v1/")
    assert b'value="activate"' in page.content and b'id="activate-confirm"' not in page.content
    # A strategy with an active version: what retires, in the kind's words.
    services.version_approve(actor=checker2, version=world.strategy_v2, comment="Reviewed.")
    shown = text(logged_in(checker).get(f"{STRATEGY}/v2/"))
    assert (
        "Strategy cross-sell v2 becomes the active version; v1, active now, will be retired "
        "and cannot be activated again."
    ) in shown


def test_retiring_the_live_deployment_says_what_stops_and_needs_a_reason(world: World, checker):
    client = logged_in(checker)
    page = "/registry/deployments/cross-sell/v1/"
    shown = text(client.get(page))
    assert "Retire the active version" in shown
    assert (
        "retiring it leaves cross-sell with no active version, and real-time decisions on "
        "the channel cross-sell stop at once (clients get 404 deployment_not_found)"
    ) in shown
    assert "cannot be made active again" in shown

    # Without a reason (a browser asks first; a hand-made post is refused here) ...
    refused = client.post(f"{page}move/", {"move": "retire", "comment": " "}, follow=True)
    assert messages_of(refused)[0].startswith("Say why you retire it. This is the active")
    world.deployment.refresh_from_db()
    assert world.deployment.status == VersionStatus.ACTIVE
    api = APIClient()
    api.force_authenticate(world.decision.client)
    assert api.get("/api/v1/deployments/cross-sell/").status_code == 200

    # ... and with one, it stops, and the trail says why.
    client.post(f"{page}move/", {"move": "retire", "comment": "Take-up model misbehaving."})
    world.deployment.refresh_from_db()
    assert world.deployment.status == VersionStatus.RETIRED
    assert api.get("/api/v1/deployments/cross-sell/").status_code == 404
    event = AuditEvent.objects.filter(action="retire").latest("seq")
    assert event.comment == "Take-up model misbehaving."


def test_retiring_an_approved_version_asks_why_and_says_it_cannot_come_back(
    world: World, checker, checker2
):
    # It sat beside "Activate" in one form: one click retired it for good, with no reason.
    logged_in(checker2).post(f"{STRATEGY}/v2/move/", {"move": "approve", "comment": "Reviewed."})
    client = logged_in(checker)
    page = client.get(f"{STRATEGY}/v2/")
    shown = text(page)
    assert "Retire this version" in shown
    assert (
        "Strategy cross-sell v2 is approved and can still be activated. A retired version never can"
    ) in shown
    assert "I understand it cannot be activated again" in shown
    body = page.content.decode()
    assert body.count('value="retire"') == 1 and 'id="retire-comment"' in body
    refused = client.post(f"{STRATEGY}/v2/move/", {"move": "retire", "comment": ""}, follow=True)
    assert messages_of(refused)[0].startswith("Say why you retire it. Strategy cross-sell v2")
    assert Version.objects.get(item__name="cross-sell", number=2).status == "approved"
    client.post(f"{STRATEGY}/v2/move/", {"move": "retire", "comment": "Superseded by v3."})
    assert Version.objects.get(item__name="cross-sell", number=2).status == "retired"


def test_navigation_shows_each_role_only_the_pages_it_may_open(world: World, maker, auditor):
    def links(user):
        return {link["label"] for link in logged_in(user).get("/").context["nav_links"]}

    assert {"Dashboard", "Reviews", "Strategies", "Models"} <= links(maker)
    assert not {"Audit trail", "Decisions"} & links(maker)
    assert {"Audit trail", "Decisions"} <= links(auditor)
    assert "Admin" not in links(maker) | links(auditor)


def test_an_administrator_is_shown_the_way_to_people_keys_and_status(world: World, admin_user):
    page = logged_in(admin_user).get("/")
    assert {"label": "Admin", "url": "/admin/", "current": False} in page.context["nav_links"]
    body = text(page)
    assert "See whether every part works" in body
    assert "deactivate or reactivate people and revoke keys in the admin" in body
    assert b'href="/status/"' in page.content


def test_an_unknown_move_or_version_is_a_message_or_a_404_never_a_500(world: World, checker):
    client = logged_in(checker)
    response = client.post(f"{STRATEGY}/v2/move/", {"move": "explode"}, follow=True)
    assert messages_of(response) == ["Choose one of the buttons to move this version."]
    missing = client.get(f"{STRATEGY}/v99/")
    assert missing.status_code == 404
    assert "There is no version 99 of the strategy 'cross-sell'." in text(missing)
    assert client.get("/registry/widgets/").status_code == 404


# --- the queue and the dashboard ----------------------------------------------------


def test_queue_lists_every_kind_oldest_first_with_its_age(world: World, maker, checker):
    note = note_version(maker=maker, checker=checker, status=VersionStatus.SUBMITTED)
    Version.objects.filter(pk=world.strategy_v2.pk).update(
        submitted_at=timezone.now() - dt.timedelta(days=3, hours=2)
    )
    page = logged_in(checker).get("/reviews/")
    rows = [r for r in text(page).split("Waiting")[1].split(" v") if r]
    body = text(page)
    assert body.index("cross-sell v2") < body.index("house-rules v1"), rows
    assert "3 days" in body
    assert f"{note.item.name} v1" in body
    assert "mia-maker" in body  # author and submitter


def test_dashboard_counts_reviews_and_shows_active_deployments(world: World, checker):
    page = logged_in(checker).get("/")
    body = text(page)
    assert "Pending reviews 1 version is waiting for a checker." in body
    assert "cross-sell v2" in body
    assert "Active deployments" in body
    assert "cross-sell v1 cross-sell v1 cross-sell-limits v1" in body
    assert b'href="/registry/strategies/cross-sell/v1/"' in page.content
    assert b'href="/registry/constraint-sets/cross-sell-limits/v1/"' in page.content


def test_dashboard_lists_a_makers_drafts(world: World, maker):
    body = text(logged_in(maker).get("/"))
    assert "Your drafts constraint set cross-sell-limits v2" in body


def test_dashboard_tells_a_maker_what_checkers_decided_and_why(world: World, maker, checker):
    assert "strategy cross-sell v2 : rejected" not in text(logged_in(maker).get("/"))
    services.version_move(
        actor=checker, version=world.strategy_v2, move="reject", comment="Premium APR too low."
    )
    body = text(logged_in(maker).get("/"))
    assert "Your versions, reviewed in the last 30 days" in body
    assert "strategy cross-sell v2 : rejected by chen-checker" in body
    assert "Premium APR too low." in body
    # Only the maker's own work: another maker's dashboard does not list it.
    other = services.user_create(
        actor=None, username="nia-maker", password="a-long-passphrase-9", roles=["maker"]
    )
    assert "reviewed in the last 30 days" not in text(logged_in(other).get("/"))


# --- drafts -------------------------------------------------------------------------


def test_new_draft_starts_from_the_live_version_pretty_printed(world: World, maker):
    page = logged_in(maker).get(f"{STRATEGY}/new/")
    assert page.status_code == 200
    assert (
        "Starting from the content of v1 (active), which the active deployment cross-sell uses."
    ) in text(page)
    textarea = page.content.decode().split("</textarea>")[0]
    assert html.escape(json.dumps(world.strategy_v1.content, indent=2), quote=True) in textarea


def _textarea_json(page) -> dict:
    return json.loads(
        html.unescape(page.content.decode().split("</textarea>")[0].rsplit(">", 1)[1])
    )


def test_a_rejected_newest_version_is_not_where_drafts_and_copies_start(
    world: World, maker, checker
):
    """The newest strategy version was rejected: a new draft and a copy start from what
    runs, and taking the rejected one by hand (?from=2) says it was rejected."""
    services.version_reject(actor=checker, version=world.strategy_v2, comment="Too costly.")
    client = logged_in(maker)
    draft = client.get(f"{STRATEGY}/new/")
    assert "Starting from the content of v1 (active), which the active deployment" in text(draft)
    assert _textarea_json(draft) == world.strategy_v1.content
    copy = client.get("/registry/strategies/new/?from=cross-sell")
    assert "Starting from the content of cross-sell v1 (active), which the active" in text(copy)
    assert _textarea_json(copy) == world.strategy_v1.content
    asked = client.get(f"{STRATEGY}/new/?from=2")
    assert (
        "Starting from the content of v2 (rejected), the version asked for. "
        "A checker rejected this content; it is not what runs."
    ) in text(asked)
    assert _textarea_json(asked) == world.strategy_v2.content


def test_an_item_with_nothing_approved_starts_from_its_newest_and_says_why(world: World, maker):
    services.version_create(
        actor=maker, kind="strategy", name="fresh", content=world.strategy_v2.content
    )
    page = logged_in(maker).get("/registry/strategies/fresh/new/")
    assert (
        "Starting from the content of v1 (draft), the newest version: none has been approved "
        "yet. No checker has reviewed this content; it is not what runs."
    ) in text(page)


def test_field_errors_from_the_service_are_shown_and_the_text_is_kept(world: World, maker):
    content = dict(world.strategy_v2.content)
    content["value"] = "p_acept * apr * limit - cost"
    content["actions"] = [*content["actions"], {"id": "card", "attributes": {}}]
    typed = json.dumps(content, indent=2)
    before = Version.objects.count()
    page = logged_in(maker).post(f"{STRATEGY}/new/", {"content": typed, "change_note": "typo"})
    assert page.status_code == 400
    body = text(page)
    assert "The strategy was not saved: 3 problems to correct below." in body
    # Each problem once: not also in the heading.
    assert body.count("unknown name 'p_acept'") == 1
    assert "value : unknown name 'p_acept' at position 0; did you mean 'p_accept'?" in body
    assert "actions[4].id : duplicate action 'card'" in body
    assert html.escape(typed, quote=True) in page.content.decode()  # nothing lost
    assert b">typo</textarea>" in page.content
    assert b'aria-invalid="true"' in page.content
    assert Version.objects.count() == before


def test_text_that_is_not_json_is_refused_before_the_service(world: World, maker):
    page = logged_in(maker).post(
        f"{STRATEGY}/new/", {"content": '{"use_case": ', "change_note": ""}
    )
    assert page.status_code == 400
    assert "This is not valid JSON: Expecting value (line 1, column 14)." in text(page)
    assert b"{&quot;use_case&quot;: </textarea>" in page.content


def test_a_valid_draft_is_created_then_edited(world: World, maker, maker2):
    content = dict(world.limits_draft.content)
    content["portfolio"] = [dict(content["portfolio"][0], bound=30000), content["portfolio"][1]]
    created = logged_in(maker2).post(
        "/registry/constraint-sets/cross-sell-limits/new/",
        {"content": json.dumps(content), "change_note": "More budget"},
        follow=True,
    )
    assert messages_of(created) == ["Draft v3 created. Submit it for review when it is ready."]
    assert "limit marketing_budget: bound changed from 25000 to 30000" in text(created)
    content["portfolio"][0]["bound"] = 27500
    edited = logged_in(maker).post(
        "/registry/constraint-sets/cross-sell-limits/v3/edit/",
        {"content": json.dumps(content), "change_note": "A bit less"},
        follow=True,
    )
    assert messages_of(edited) == ["Draft v3 saved."]
    v3 = Version.objects.get(item__name="cross-sell-limits", number=3)
    assert v3.content["portfolio"][0]["bound"] == 27500
    assert set(v3.contributors.values_list("username", flat=True)) == {"max-maker", "mia-maker"}


def test_the_same_form_sent_twice_saves_one_draft(world: World, maker):
    """The back button (or a reload, a double click) sends the saved form again: it
    leads to the draft already saved instead of adding a copy of it."""
    client = logged_in(maker)
    url = "/registry/constraint-sets/cross-sell-limits/new/"
    form = {"content": json.dumps(world.limits_draft.content), "change_note": "Same budget"}
    first = client.post(url, form, follow=True)
    assert messages_of(first) == ["Draft v3 created. Submit it for review when it is ready."]
    before = Version.objects.count()
    again = client.post(url, form, follow=True)
    assert Version.objects.count() == before
    assert messages_of(again) == [
        "Nothing new was saved: this is the same as your draft v3, saved before. Here it is."
    ]
    assert again.redirect_chain[-1][0] == first.redirect_chain[-1][0]
    # A different note (or content) is a new draft.
    changed = client.post(url, {**form, "change_note": "Same budget, new note"})
    assert changed.status_code == 302 and Version.objects.count() == before + 1


def test_a_submitted_version_cannot_be_edited(world: World, maker):
    response = logged_in(maker).get(f"{STRATEGY}/v2/edit/", follow=True)
    assert messages_of(response) == [
        "Version 2 of cross-sell is submitted: its content can no longer change. "
        "Create a new version instead."
    ]


def test_models_have_no_editor(world: World, maker):
    page = logged_in(maker).get("/registry/models/take-up/new/")
    assert page.status_code == 404
    assert "registered through the API or the command line" in text(page)


def test_a_refused_move_gives_back_the_reason_typed(world: World, checker):
    """Retiring a constraint set the active deployment decides with is refused; the
    checker's reason is in the box again, once."""
    url = "/registry/constraint-sets/cross-sell-limits/v1/"
    reason = "Replaced by the Q3 limits,\nsee the risk committee minutes."
    client = logged_in(checker)
    refused = client.post(
        url + "move/", {"move": "retire", "comment": reason, "confirm": "yes"}, follow=True
    )
    (message,) = messages_of(refused)
    assert "deployment cross-sell v1 decides with it" in message
    page = refused.content.decode()
    assert f'maxlength="5000">{html.escape(reason)}</textarea>' in page
    again = client.get(url).content.decode()
    assert 'maxlength="5000"></textarea>' in again
    assert html.escape(reason) not in again


@pytest.mark.parametrize(
    ("url", "heading"),
    [
        ("/registry/alert-rules/new/", "New alert rule set"),
        (f"{STRATEGY}/new/", "New draft of strategy cross-sell"),
        (
            "/registry/constraint-sets/cross-sell-limits/v2/edit/",
            "Edit draft v2 of constraint set cross-sell-limits",
        ),
    ],
)
def test_a_draft_form_opens_with_its_own_heading_not_an_error(world: World, maker, url, heading):
    page = logged_in(maker).get(url)
    assert page.status_code == 200
    body = page.content.decode()
    assert f"<h1>{heading}</h1>" in body
    assert f"<title>{heading} · Arbiter</title>" in body
    assert "not saved" not in text(page) and 'role="alert"' not in body


def test_a_maker_creates_a_new_item_from_the_kinds_example(world: World, maker):
    """Alert rules exist nowhere in a fresh install: the registry page offers a new one,
    starting from an example that validates as it stands."""
    client = logged_in(maker)
    browse = client.get("/registry/alert-rules/")
    assert 'href="/registry/alert-rules/new/"' in browse.content.decode()
    page = client.get("/registry/alert-rules/new/")
    assert page.status_code == 200
    assert "Named after the deployment whose figures they watch" in text(page)
    example = html.unescape(page.content.decode().split("</textarea>")[0].rsplit(">", 1)[1])
    created = client.post(
        "/registry/alert-rules/new/",
        {"name": "cross-sell", "content": example, "change_note": "First rules"},
        follow=True,
    )
    assert messages_of(created) == [
        "Alert rule set cross-sell created as draft v1. Submit it for review when it is ready."
    ]
    version = Version.objects.get(item__kind="alert_rules", item__name="cross-sell")
    assert version.number == 1 and version.status == VersionStatus.DRAFT
    # Sent again (the back button): the draft already saved, not "the name is taken".
    again = client.post(
        "/registry/alert-rules/new/",
        {"name": "cross-sell", "content": example, "change_note": "First rules"},
        follow=True,
    )
    assert messages_of(again) == [
        "Nothing new was saved: this is the same as your draft v1, saved before. Here it is."
    ]
    assert Version.objects.filter(item__kind="alert_rules").count() == 1
    assert [r["name"] for r in version.content["rules"]] == ["complaints-high", "model-drift"]


def test_a_new_item_copies_another_and_refuses_a_taken_or_bad_name(world: World, maker):
    client = logged_in(maker)
    browse = client.get("/registry/constraint-sets/").content.decode()
    assert 'href="/registry/constraint-sets/new/?from=cross-sell-limits"' in browse
    page = client.get("/registry/constraint-sets/new/?from=cross-sell-limits")
    assert (
        "Starting from the content of cross-sell-limits v1 (active), which the active "
        "deployment cross-sell uses."
    ) in text(page)
    before = Version.objects.count()
    content = json.dumps(world.limits_draft.content)
    taken = client.post(
        "/registry/constraint-sets/new/", {"name": "cross-sell-limits", "content": content}
    )
    assert taken.status_code == 409
    assert "There is already a constraint set called 'cross-sell-limits'" in text(taken)
    assert "name : a constraint set of this name exists" in text(taken)
    assert b'name="name" id="id_name" value="cross-sell-limits"' in taken.content
    bad = client.post("/registry/constraint-sets/new/", {"name": "Q1 Limits", "content": content})
    assert bad.status_code == 400
    assert "name : use 1-100 lower-case letters" in text(bad)
    # Only the name is marked wrong; the content is fine.
    page = bad.content.decode()
    assert 'id="id_name" value="Q1 Limits"' in page
    assert page.split('id="id_name"')[1].split(">")[0].endswith('aria-invalid="true"')
    assert 'aria-invalid="true">' not in page.split('id="id_content"')[1].split("</textarea>")[0]
    unnamed = client.post("/registry/constraint-sets/new/", {"name": "", "content": content})
    assert "The constraint set was not saved: correct the name." in text(unnamed)
    assert Version.objects.count() == before
    made = client.post(
        "/registry/constraint-sets/new/",
        {"name": "cross-sell-q1", "content": content, "change_note": "Q1"},
    )
    assert made.status_code == 302
    assert Version.objects.get(item__name="cross-sell-q1").content == world.limits_draft.content


def test_a_new_strategy_starts_from_an_active_one(world: World, maker):
    """A strategy has no example that could stand alone (it names its models): the page
    starts from the newest active strategy, and says so."""
    page = logged_in(maker).get("/registry/strategies/new/")
    assert (
        "Starting from the content of cross-sell v1 (active), the newest active strategy."
    ) in text(page)
    textarea = html.unescape(page.content.decode().split("</textarea>")[0].rsplit(">", 1)[1])
    assert json.loads(textarea) == world.strategy_v1.content


def test_only_makers_create_items(world: World, checker, admin_user):
    refused = logged_in(checker).get("/registry/alert-rules/new/")
    assert refused.status_code == 403
    assert "Ask an administrator if you need this role." in text(refused)
    # An administrator is not sent to ask themselves.
    admin_page = text(logged_in(admin_user).get("/registry/alert-rules/new/"))
    assert "Ask an administrator" not in admin_page
    assert "Roles are granted in the admin" in admin_page
    assert (
        "New alert rules" not in logged_in(checker).get("/registry/alert-rules/").content.decode()
    )


# --- escaping -----------------------------------------------------------------------


def test_user_text_is_escaped_everywhere_it_is_shown(world: World, maker, checker):
    content = dict(world.limits_draft.content)
    content["description"] = XSS
    logged_in(maker).post(
        "/registry/constraint-sets/cross-sell-limits/v2/edit/",
        {"content": json.dumps(content), "change_note": XSS},
    )
    logged_in(maker).post(
        "/registry/constraint-sets/cross-sell-limits/v2/move/", {"move": "submit"}
    )
    client = logged_in(checker)
    for url in [
        "/registry/constraint-sets/cross-sell-limits/v2/",
        "/registry/constraint-sets/",
        "/reviews/",
        "/audit/",
        "/registry/constraint-sets/cross-sell-limits/v2/edit/",
    ]:
        page = client.get(url)
        assert XSS.encode() not in page.content, url
    version_page = client.get("/registry/constraint-sets/cross-sell-limits/v2/")
    assert b"&lt;script&gt;alert(1)&lt;/script&gt;" in version_page.content
    assert f'description changed from "Quarterly cross-sell limits." to "{XSS}"' in text(
        version_page
    )


def test_no_template_or_view_turns_escaping_off():
    for path in (ROOT / "templates").rglob("*.html"):
        source = path.read_text(encoding="utf-8")
        assert "|safe" not in source and "autoescape off" not in source, path
    for app in ("governance", "decisions", "arbiter"):
        for path in (ROOT / app).rglob("*.py"):
            assert "mark_safe" not in path.read_text(encoding="utf-8"), path


# --- CSRF ---------------------------------------------------------------------------


def test_posts_without_the_csrf_token_are_refused(world: World, checker):
    client = Client(enforce_csrf_checks=True)
    client.force_login(checker)
    refused = client.post(f"{STRATEGY}/v2/move/", {"move": "approve", "comment": "Reviewed."})
    assert refused.status_code == 403
    world.strategy_v2.refresh_from_db()
    assert world.strategy_v2.status == VersionStatus.SUBMITTED

    page = client.get(f"{STRATEGY}/v2/")
    token = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', page.content).group(1)
    client.post(
        f"{STRATEGY}/v2/move/",
        {"move": "approve", "comment": "Reviewed.", "csrfmiddlewaretoken": token.decode()},
    )
    world.strategy_v2.refresh_from_db()
    assert world.strategy_v2.status == VersionStatus.APPROVED


# --- audit trail --------------------------------------------------------------------


def test_audit_trail_filters_and_verifies(world: World, auditor):
    client = logged_in(auditor)
    page = client.get("/audit/")
    assert "The audit chain verifies." in text(page)
    only = client.get("/audit/", {"item": "cross-sell-limits", "actor": "mia-maker"})
    rows = [e for e in only.context["rows"]]
    assert rows and all(r["event"].item_name == "cross-sell-limits" for r in rows)
    assert {r["event"].actor_username for r in rows} == {"mia-maker"}
    kinds = client.get("/audit/", {"kind": "deployment"})
    assert {r["event"].kind for r in kinds.context["rows"]} == {"deployment"}
    today = timezone.now().date()
    in_range = client.get("/audit/", {"since": today.isoformat(), "until": today.isoformat()})
    assert len(in_range.context["rows"]) == AuditEvent.objects.count()
    before = client.get("/audit/", {"until": (today - dt.timedelta(days=1)).isoformat()})
    assert before.context["rows"] == [] and "No events match." in text(before)
    assert "0 events" not in text(before)
    backwards = client.get(
        "/audit/", {"since": today.isoformat(), "until": (today - dt.timedelta(days=1)).isoformat()}
    )
    assert "The end date is before the start date." in text(backwards)
    # A filter that does not read lists nothing and offers no download (dropping it would
    # show, and export, every event as if it were the selection).
    assert "Correct the filter above" in text(backwards)
    assert "rows" not in backwards.context and b"format=csv" not in backwards.content
    bad_date = client.get("/audit/", {"item": "cross-sell-limits", "since": "2026-13-45"})
    assert b"format=csv" not in bad_date.content and "Correct the filter" in text(bad_date)
    assert "deployment" in {r["kind_label"] for r in kinds.context["rows"]}
    assert "constraint set" in {r["kind_label"] for r in page.context["rows"]}
    linked = client.get("/audit/", {"item": "cross-sell", "kind": "strategy"})
    assert b'href="/registry/strategies/cross-sell/v2/"' in linked.content


def test_audit_trail_says_when_the_chain_is_broken(world: World, auditor):
    head = ChainHead.objects.get()
    AuditEvent.objects.create(  # an event forged outside the services: appended, not chained
        seq=head.seq + 1,
        created_at=timezone.now(),
        actor_username="mallory",
        action="approve",
        prev_hash="0" * 64,
        hash="f" * 64,
    )
    page = logged_in(auditor).get("/audit/")
    body = text(page)
    assert "The audit chain does not verify." in body
    assert f"event #{head.seq + 1} does not chain to #{head.seq}" in body


# --- accessibility ------------------------------------------------------------------


class _Controls(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.labels: set[str] = set()
        self.controls: list[tuple[str, dict]] = []
        self.landmarks: list[str] = []
        self.lang = ""
        self.ids: list[str] = []
        self.described_by: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if attrs.get("id"):
            self.ids.append(attrs["id"])
        self.described_by += (attrs.get("aria-describedby") or "").split()
        if tag == "html":
            self.lang = attrs.get("lang", "")
        if tag == "label" and attrs.get("for"):
            self.labels.add(attrs["for"])
        if tag in ("main", "nav", "header"):
            self.landmarks.append(tag)
        if tag in ("input", "select", "textarea") and attrs.get("type") not in (
            "hidden",
            "submit",
            "button",
        ):
            self.controls.append((tag, attrs))


def test_every_form_control_has_a_label_and_pages_have_landmarks(world: World, maker, checker):
    pages = {
        maker: [
            "/",
            f"{STRATEGY}/new/",
            "/registry/alert-rules/new/",
            "/registry/constraint-sets/cross-sell-limits/v2/",
        ],
        checker: [
            "/",
            "/reviews/",
            f"{STRATEGY}/v2/",
            "/registry/models/take-up/v1/",
            "/registry/deployments/cross-sell/v1/",
            "/audit/",
            "/decisions/",
            "/decisions/?since=2026-13-01",
            "/audit/?since=nonsense",
            f"/decisions/{world.decision.decision_id}/",
        ],
    }
    for user, urls in pages.items():
        client = logged_in(user)
        for url in urls:
            parser = _Controls()
            parser.feed(client.get(url).content.decode())
            assert parser.lang == "en", url
            # A label names one box only when ids are unique on the page.
            assert len(parser.ids) == len(set(parser.ids)), (url, sorted(parser.ids))
            assert set(parser.described_by) <= set(parser.ids), (url, parser.described_by)
            assert parser.landmarks.count("main") == 1 and "nav" in parser.landmarks, url
            for tag, attrs in parser.controls:
                assert attrs.get("id") in parser.labels or attrs.get("aria-label"), (
                    url,
                    tag,
                    attrs,
                )


def test_odd_input_on_the_pages_gets_a_sentence_not_an_error(world: World, maker, checker):
    """Found by fuzzing the pages: each of these answered 500 or a misleading message."""
    # A superscript two is not a version number: the draft starts from the latest version.
    superscript = logged_in(maker).get("/registry/strategies/cross-sell/new/?from=²")
    assert superscript.status_code == 200
    long_comment = logged_in(checker).post(
        f"{STRATEGY}/v2/move/", {"move": "reject", "comment": "x" * 5001}, follow=True
    )
    assert messages_of(long_comment) == [
        "The comment was not accepted: Ensure this value has at most 5000 characters (it has 5001)."
    ]
    # What was typed comes back to be shortened, not retyped.
    assert '<textarea id="move-comment" name="comment" rows="3">' + "x" * 5001 in (
        long_comment.content.decode()
    )
    world.strategy_v2.refresh_from_db()
    assert world.strategy_v2.status == VersionStatus.SUBMITTED
