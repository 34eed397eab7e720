"""Looking up a logged decision, reading why it was made, and replaying it."""

from __future__ import annotations

import copy
import re
import uuid
from datetime import UTC, timedelta
from urllib.parse import urlencode

import pytest
from django.test import Client

from decisions.models import Decision
from decisions.services import decision_make
from tests.ui.conftest import World, customer
from tests.ui.test_review_pages import text

pytestmark = pytest.mark.django_db


@pytest.fixture
def client(auditor) -> Client:
    client = Client()
    client.force_login(auditor)
    return client


def test_search_by_customer_or_decision_id(world: World, client, api_client_user):
    decision_make(
        actor=api_client_user, deployment="cross-sell", customer_id="C-7", features=customer(1)
    )
    by_customer = client.get("/decisions/", {"q": "C-1042"})
    assert [d.customer_id for d in by_customer.context["decisions"]] == ["C-1042"]
    assert "1 decision found" in text(by_customer)
    # Every decision for the customer as CSV, through the API the page links to.
    link = by_customer.context["csv_url"]
    assert link == "/api/v1/decisions/?customer_id=C-1042&format=csv"
    assert f'href="{link.replace("&", "&amp;")}"'.encode() in by_customer.content
    export = client.get(link)
    lines = b"".join(export.streaming_content).decode().splitlines()
    assert len(lines) == 2 and lines[1].startswith(f"{world.decision.decision_id},")
    by_id = client.get("/decisions/", {"q": str(world.decision.decision_id)})
    assert [d.pk for d in by_id.context["decisions"]] == [world.decision.pk]
    assert by_id.context["csv_url"] == ""  # a decision id: its page has everything
    assert f'href="/decisions/{world.decision.decision_id}/"'.encode() in by_id.content
    nothing = client.get("/decisions/", {"q": str(uuid.uuid4())})
    assert "No decision matches" in text(nothing)
    recent = client.get("/decisions/")
    assert [d.customer_id for d in recent.context["decisions"]] == ["C-7", "C-1042"]
    # Find with every box empty lists the latest too, not an empty page.
    empty = client.get("/decisions/", {"q": "", "deployment": "", "since": "", "until": ""})
    assert "Most recent decisions" in text(empty)
    assert [d.customer_id for d in empty.context["decisions"]] == ["C-7", "C-1042"]


def test_find_by_deployment_and_days_and_download_them_for_the_examiner(
    world: World, client, api_client_user, monkeypatch
):
    for i in range(3):
        decision_make(
            actor=api_client_user,
            deployment="cross-sell",
            customer_id=f"C-{i}",
            features=customer(i),
        )
    first_day = Decision.objects.order_by("seq").first().created_at.astimezone(UTC).date()
    page = client.get("/decisions/", {"deployment": "cross-sell", "since": first_day})
    assert len(page.context["decisions"]) == 4 and "4 decisions found" in text(page)
    # Every one of them as CSV, oldest first, through the API the page links to.
    link = page.context["csv_url"]
    since = f"{first_day.isoformat()}T00:00:00+00:00"
    assert link == "/api/v1/decisions/?" + urlencode(
        {"deployment": "cross-sell", "since": since, "format": "csv"}
    )
    assert "Download all 4 as CSV" in text(page)
    lines = b"".join(client.get(link).streaming_content).decode().splitlines()
    assert [line.split(",")[0] for line in lines[1:]] == [
        str(d.decision_id) for d in Decision.objects.order_by("seq")
    ]
    # The replay form takes the same deployment and days.
    assert page.context["replay_form"].initial == {
        "deployment": "cross-sell",
        "since": first_day,
        "until": None,
    }
    replay_form = page.content.decode().split('id="replay-heading"')[1].split("</form>")[0]
    assert (
        f'name="since" value="{first_day.isoformat()}"' in replay_form
    )  # ISO, as a date input needs
    # Days before the first decision: none, and nothing to download.
    before = client.get("/decisions/", {"until": first_day - timedelta(days=1)})
    assert "No decision matches" in text(before) and before.context["csv_url"] == ""
    # Bad input: each field says what is wrong, and nothing is listed.
    bad = client.get("/decisions/", {"deployment": "nope", "since": "2026-13-01"})
    assert bad.status_code == 200 and bad.context["decisions"] == []
    assert "Select a valid choice" in text(bad) and "Enter a valid date" in text(bad)
    backwards = client.get("/decisions/", {"since": first_day, "until": first_day - timedelta(1)})
    assert "The last day comes before the first" in text(backwards)
    assert backwards.context["decisions"] == []
    # Past the counting limit the page says "more than" and lists the newest.
    monkeypatch.setattr("decisions.views.COUNT_LIMIT", 2)
    monkeypatch.setattr("decisions.views.SEARCH_LIMIT", 2)
    many = client.get("/decisions/", {"deployment": "cross-sell"})
    assert "More than 2 decisions found (the newest 2 below)" in text(many)
    assert "Download every one as CSV" in text(many)
    assert [d.customer_id for d in many.context["decisions"]] == ["C-2", "C-1"]


def test_decision_page_shows_the_action_reasons_explanation_and_versions(world: World, client):
    decision = world.decision
    page = client.get(f"/decisions/{decision.decision_id}/")
    body = text(page)
    assert f"Decision for customer C-1042: {decision.action_id}" in body
    for reason in decision.reasons:
        assert f"{reason['code']} {reason['text']} {reason['feature']}" in body
    assert decision.explanation["summary"] in body
    if decision.explanation["runner_up"]:
        assert f"Runner-up {decision.explanation['runner_up']['action']}" in body
    for href in (
        "/registry/deployments/cross-sell/v1/",
        "/registry/strategies/cross-sell/v1/",
        "/registry/constraint-sets/cross-sell-limits/v1/",
        "/registry/models/take-up/v1/",
    ):
        assert f'href="{href}"'.encode() in page.content
    assert "income 26900" in body and "region east" in body
    assert "Arm champion" in body


def test_a_decision_decided_by_rules_names_them_in_words_before_the_model_reasons(
    world: World, client, api_client_user
):
    """A customer with recent arrears gets no offer: the arrears rule, not the model,
    decided it, so the page says so in the strategy's words before the model's reasons."""
    features = {**customer(0), "delinquencies": 5}
    made = decision_make(
        actor=api_client_user, deployment="cross-sell", customer_id="C-77", features=features
    ).decision
    offers = [a for a in made.actions if a["action"] != made.action_id]
    assert made.explanation["summary"].endswith("was the only eligible action.")
    body = text(client.get(f"/decisions/{made.decision_id}/"))
    considered = len(made.actions)
    assert (
        "Rules that excluded actions No other action passed these rules, so they decided the "
        "outcome; the model reasons below come after them."
    ) in body
    assert (
        "Customers with three or more late payments get no offer. It excluded "
        f"{len(offers)} of the {considered} actions considered. Rule no_recent_arrears : "
        "delinquencies < 3 or limit == 0"
    ) in body
    assert body.index("Rules that excluded actions") < body.index("Principal reasons from")

    # The block is there exactly when some action was excluded.
    plain = text(client.get(f"/decisions/{world.decision.decision_id}/"))
    excluded = bool(world.decision.explanation["ineligible"])
    assert ("Rules that excluded actions" in plain) is excluded


def test_replay_matches(world: World, client):
    page = client.post(f"/decisions/{world.decision.decision_id}/replay/")
    assert page.status_code == 200
    assert "The replay matches:" in text(page)


def test_replay_shows_the_differences_of_a_forged_row(world: World, client):
    # The log refuses UPDATE on PostgreSQL, so forge a new row rather than edit one.
    forged = copy.copy(world.decision)
    forged.pk = None
    forged.decision_id = uuid.uuid4()
    forged.value = world.decision.value + 100
    forged.save(force_insert=True)
    page = client.post(f"/decisions/{forged.decision_id}/replay/")
    body = text(page)
    assert "The replay differs from the log in 1 field." in body
    assert f"value {forged.value}" in body
    assert Decision.objects.count() == 2  # replaying writes nothing


def test_the_log_is_verified_on_demand_and_the_page_says_what_was_found(world: World, client):
    from decisions.decision_log import decision_blocks_seal

    assert "The decision log has not been verified yet" in text(client.get("/decisions/"))
    decision_blocks_seal(grace_seconds=0)
    answer = client.post("/decisions/verify/", follow=True)  # no broker here: it runs now
    body = text(answer)
    assert "The decision log verifies." in body
    assert "The decision log verified on" in body and "(Verify now, asked by" in body
    assert "1 sealed block holding 1 decision, and 0 not yet sealed" in body

    # Someone changes a logged decision; the next check names it.
    _forge(world.decision)
    body = text(client.post("/decisions/verify/", follow=True))
    assert "The decision log does not verify." in body
    assert "The decision log did not verify on" in body
    assert f"The first bad decision is {world.decision.decision_id}" in body
    assert f"decision {world.decision.decision_id} (seq {world.decision.seq}) was altered" in body
    assert "The first bad block is 1." in body


def test_makers_may_not_verify_the_log(world: World, maker):
    client = Client()
    client.force_login(maker)
    assert client.post("/decisions/verify/").status_code == 403
    from decisions.models import LogVerification

    assert not LogVerification.objects.exists()


def _forge(decision: Decision) -> None:
    """Change a logged row as someone with the database could (past PostgreSQL's trigger)."""
    from django.db import connection, transaction

    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET LOCAL session_replication_role = replica")
        cursor.execute(
            "UPDATE decisions_decision SET action_id = 'forged' WHERE seq = %s", [decision.seq]
        )


def test_a_replay_asked_for_with_an_odd_run_says_which_field(world: World, auditor):
    page = Client()
    page.force_login(auditor)
    answer = page.post("/decisions/replays/", {"size": "5", "run": "abc"}, follow=True)
    assert "The replay was not started. run: Enter a whole number." in text(answer)


def test_a_refused_replay_keeps_what_was_typed(world: World, auditor):
    page = Client()
    page.force_login(auditor)
    typed = {"size": "0", "seed": "abc", "since": "2026-05-02", "until": "2026-05-01"}
    answer = page.post("/decisions/replays/", typed, follow=True)
    assert "The replay was not started." in text(answer)
    body = answer.content.decode()
    for name, value in typed.items():
        assert re.search(rf'name="{name}" value="{value}"[^>]*id="replay_{name}"', body), name
    # Once: the page read again starts afresh.
    assert 'value="abc"' not in page.get("/decisions/").content.decode()
