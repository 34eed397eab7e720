"""The optimisation pages: start a run, read its result, propose its prices, cancel."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from decisions.demo_setup import demo_load
from decisions.models import Decision, OptimisationRun
from decisions.populations import population_simulated
from governance.models import Version

pytestmark = pytest.mark.django_db


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def users():
    demo_load()
    return {u.username: u for u in get_user_model().objects.all()}


def test_a_maker_starts_a_run_reads_it_and_proposes_its_prices(
    users, django_capture_on_commit_callbacks
):
    maker = logged_in(users["maker"])
    page = maker.get("/optimisation/").content.decode()
    assert 'name="deployment"' in page and "cross-sell" in page
    with django_capture_on_commit_callbacks(execute=True):
        response = maker.post(
            "/optimisation/start/",
            {
                "deployment": "cross-sell",
                "customers": "600",
                "seed": "4",
                "description": "Q3",
                "log_decisions": "simulated",  # ticked: the checker reads its decisions below
            },
        )
    run = OptimisationRun.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/optimisation/{run.pk}/"
    page = maker.get(response["Location"]).content.decode()
    assert "Succeeded" in page, page[:2000]
    assert "Certified gap" in page and "premium_card_quota" in page
    # Its totals, but not each customer's decision: those are for the log's readers.
    assert "600 logged" in page and "/decisions/?format=csv" not in page
    assert 'http-equiv="refresh"' not in page  # finished: no more refreshing
    assert "Propose the prices" in page

    response = maker.post(f"/optimisation/{run.pk}/publish/", {"comment": "Q3 prices"})
    assert response.status_code == 302
    version = Version.objects.get(
        item__kind="deployment", item__name="cross-sell", status="submitted"
    )
    assert version.content["price_source"] == f"optimisation run {run.pk}"
    assert version.change_note == "Q3 prices"  # the maker's note, as typed
    page = maker.get(f"/optimisation/{run.pk}/").content.decode()
    assert "is submitted for review" in page and f"cross-sell v{version.number}" in page
    # The proposal's page leads back to the run its prices come from.
    proposal = maker.get(f"/registry/deployments/cross-sell/v{version.number}/").content.decode()
    assert "Where these prices come from" in proposal
    assert f'<a href="/optimisation/{run.pk}/">optimisation run {run.pk}</a> (Q3)' in proposal
    assert "premium_card_quota" in proposal
    # Only the prices change: there is no portfolio impact to simulate, so no panel.
    assert "Simulated impact" not in proposal
    # A proposal while another is under review (as if from another run) is refused, and
    # the note typed is kept for the next try.
    OptimisationRun.objects.filter(pk=run.pk).update(published_version=None)
    refused = maker.post(
        f"/optimisation/{run.pk}/publish/", {"comment": "Q3 prices, again"}, follow=True
    )
    assert "already" in " ".join(str(m) for m in refused.context["messages"])
    assert 'maxlength="1000" value="Q3 prices, again"' in refused.content.decode()
    assert 'value="Q3 prices, again"' not in maker.get(f"/optimisation/{run.pk}/").content.decode()
    OptimisationRun.objects.filter(pk=run.pk).update(published_version=version)

    # The checker reads the run and its decisions, cannot publish, and finds the proposal
    # in the queue.
    checker = logged_in(users["checker"])
    page = checker.get(f"/optimisation/{run.pk}/").content.decode()
    assert f"/api/v1/optimisation-runs/{run.pk}/decisions/?format=csv" in page
    page = checker.get(f"/optimisation/{run.pk}/").content.decode()
    assert "Propose the prices" not in page
    assert checker.post(f"/optimisation/{run.pk}/publish/").status_code == 403
    assert "cross-sell" in checker.get("/reviews/").content.decode()
    # The dashboard lists it with its status.
    dashboard = checker.get("/").content.decode()
    assert "Latest optimisation runs" in dashboard and f"Run {run.pk}" in dashboard


def test_a_simulated_run_from_the_form_logs_nothing_unless_ticked_and_a_file_does(
    users, django_capture_on_commit_callbacks
):
    # The form had no way not to log: a what-if on 5,000 simulated customers filled the
    # decision pages and replays with sim-1-* decisions.
    maker = logged_in(users["maker"])
    form = maker.get("/optimisation/").content.decode()
    assert 'id="log-file" name="log_decisions" value="file" checked' in form
    assert re.search(r'id="log-simulated" name="log_decisions" value="simulated"[^>]*>', form)
    assert "checked" not in re.search(r'id="log-simulated"[^>]*>', form).group(0)
    assert "Log each customer's decision in the decision log" in form
    assert "A simulation's decisions are kept out of KPIs and drift anyway" in form

    # The form as it comes (the file box ticked, the simulation's not), without a file.
    with django_capture_on_commit_callbacks(execute=True):
        maker.post(
            "/optimisation/start/",
            {"deployment": "cross-sell", "customers": "300", "seed": "1", "log_decisions": "file"},
        )
    run = OptimisationRun.objects.get()
    page = maker.get(f"/optimisation/{run.pk}/").content.decode()
    assert "Succeeded" in page and "a simulation: none logged" in page
    assert not Decision.objects.filter(channel="optimisation-run").exists()
    assert not Decision.objects.filter(customer_id__startswith="sim-").exists()

    # A file of real customers, as the form comes: logged.
    upload = SimpleUploadedFile(
        "q3.csv",
        population_simulated("cross-sell", 40, seed=4).to_csv(index=False).encode(),
        content_type="text/csv",
    )
    with django_capture_on_commit_callbacks(execute=True):
        maker.post(
            "/optimisation/start/",
            {"deployment": "cross-sell", "population": upload, "log_decisions": "file"},
        )
    filed = OptimisationRun.objects.latest("pk")
    assert filed.pk != run.pk
    assert "40 logged" in maker.get(f"/optimisation/{filed.pk}/").content.decode()
    assert Decision.objects.filter(channel="optimisation-run").count() == 40


def test_a_bad_start_shows_a_message_and_stores_nothing(users):
    maker = logged_in(users["maker"])
    response = maker.post("/optimisation/start/", {"deployment": "nope"}, follow=True)
    assert "The deployment &#x27;nope&#x27; does not exist." in response.content.decode()
    response = maker.post(
        "/optimisation/start/", {"deployment": "cross-sell", "customers": "lots"}, follow=True
    )
    assert "whole numbers" in response.content.decode()
    too_many = maker.post(
        "/optimisation/start/", {"deployment": "cross-sell", "customers": "0"}, follow=True
    )
    (message,) = [str(m) for m in too_many.context["messages"]]
    assert message == "The run was not started. Customers: must be between 1 and 2000000."
    long = maker.post(
        "/optimisation/start/",
        {"deployment": "onboarding", "customers": "700", "seed": "9", "description": "Q" * 301},
        follow=True,
    )
    (message,) = [str(m) for m in long.context["messages"]]
    assert (
        message == "The run was not started. The description is 301 characters long; at most 300."
    )
    # The form comes back as typed.
    form = long.content.decode()
    assert '<option value="onboarding" selected>' in form
    assert 'name="customers" min="1" max="2000000" value="700"' in form
    assert 'value="9"' in form and f'value="{"Q" * 301}"' in form
    empty = SimpleUploadedFile("people.csv", b"", content_type="text/csv")
    response = maker.post(
        "/optimisation/start/", {"deployment": "cross-sell", "population": empty}, follow=True
    )
    (message,) = [str(m) for m in response.context["messages"]]
    assert message == "The run was not started. The population file is empty."
    assert not OptimisationRun.objects.exists()


def test_a_queued_run_refreshes_and_can_be_cancelled_by_its_maker(users):
    from decisions.optimisation import optimisation_run_create

    run = optimisation_run_create(
        actor=users["maker"], deployment="collections", simulated={"customers": 10}, enqueue=False
    )
    page = logged_in(users["maker"]).get(f"/optimisation/{run.pk}/").content.decode()
    assert 'http-equiv="refresh"' in page and "Cancel the run" in page
    # Another person's run: no cancel button for the checker.
    assert (
        "Cancel the run"
        not in logged_in(users["checker"]).get(f"/optimisation/{run.pk}/").content.decode()
    )
    response = logged_in(users["maker"]).post(f"/optimisation/{run.pk}/cancel/", follow=True)
    assert "Cancelled." in response.content.decode()
    run.refresh_from_db()
    assert run.status == "cancelled"


def test_run_content_is_escaped(world, maker):
    page = logged_in(maker).get(f"/optimisation/{world.run.pk}/").content.decode()
    assert "Card &lt;b&gt;offer&lt;/b&gt;" in page and "<b>offer</b>" not in page
    assert "q3.csv" in page and "sha256/00" not in page


def test_a_checker_simulates_the_impact_of_a_submitted_strategy(
    users, django_capture_on_commit_callbacks
):
    candidate = Version.objects.get(item__kind="strategy", item__name="cross-sell", number=2)
    assert candidate.status == "submitted"
    url = f"/registry/strategies/cross-sell/v{candidate.number}/"
    checker = logged_in(users["checker"])
    page = checker.get(url).content.decode()
    assert "Simulated impact" in page and "Simulate the impact" in page
    with django_capture_on_commit_callbacks(execute=True):
        response = checker.post(f"/impact/{candidate.pk}/")
    assert response.status_code == 302 and response["Location"] == url
    runs = OptimisationRun.objects.order_by("id")
    assert [r.status for r in runs] == ["succeeded", "succeeded"]
    assert not any(r.log_decisions for r in runs)
    page = checker.get(url).content.decode()
    assert "Portfolio of 5000 customers" in page
    assert "Expected value" in page and "Customers per action" in page
    assert "with strategy cross-sell v2 in place" in page
    # Shares to a tenth of a percent, named for the use case.
    assert "Customers made an offer" in page
    assert re.search(r"<td>\d+\.\d%</td>", page)
    assert "percentage points" in page
    assert "Simulate the impact" not in page  # computed once per pair
    assert "within the optimiser's tolerance" not in page  # a real change
    assert 'http-equiv="refresh"' not in page
    # Asking again reuses the runs: still two.
    with django_capture_on_commit_callbacks(execute=True):
        checker.post(f"/impact/{candidate.pk}/")
    assert OptimisationRun.objects.count() == 2
    # The auditor reads the comparison but may not start one.
    auditor = logged_in(users["auditor"])
    assert "Portfolio of 5000 customers" in auditor.get(url).content.decode()
    assert auditor.post(f"/impact/{candidate.pk}/").status_code == 403
    # What is in force, or a model, has nothing to be compared with: said, nothing run.
    active = Version.objects.get(item__kind="strategy", item__name="cross-sell", number=1)
    model = Version.objects.filter(item__kind="model").first()
    for version, why in (
        (active, "cross-sell v1 is active: the impact is simulated for a draft"),
        (model, "a model's shows on the page of the strategy version that uses it"),
    ):
        refused = checker.post(f"/impact/{version.pk}/", follow=True)
        (message,) = [str(m) for m in refused.context["messages"]]
        assert why in message
    assert OptimisationRun.objects.count() == 2


def _cross_sell_budget_raised(maker) -> tuple[Version, Version]:
    """The active cross-sell constraint set, and a new draft of it with its first limit's
    bound raised by half."""
    from decisions import runtime
    from governance import services

    limits = runtime.arm_runtime(
        "champion", runtime.active_deployment("cross-sell").content
    ).constraint_set
    content = dict(limits.content)
    content["portfolio"] = [dict(lim) for lim in content["portfolio"]]
    content["portfolio"][0]["bound"] = content["portfolio"][0]["bound"] * 1.5
    draft = services.version_create(
        actor=maker, kind="constraint_set", name=limits.item.name, content=content
    )
    return limits, draft


def test_an_impact_within_the_solvers_tolerance_says_so(users, django_capture_on_commit_callbacks):
    """A new description alone runs both simulations too; a customer or two may land
    differently within the certified gaps, which the page must not present as the
    version's doing."""
    from decisions import runtime
    from governance import services

    active = runtime.arm_runtime(
        "champion", runtime.active_deployment("collections").content
    ).strategy
    content = {**active.content, "description": "Same strategy, clearer words."}
    candidate = services.version_create(
        actor=users["maker"], kind="strategy", name=active.item.name, content=content
    )
    services.version_submit(actor=users["maker"], version=candidate)
    checker = logged_in(users["checker"])
    with django_capture_on_commit_callbacks(execute=True):
        checker.post(f"/impact/{candidate.pk}/")
    page = checker.get(f"/registry/strategies/{active.item.name}/v{candidate.number}/")
    assert "Portfolio of 5000 customers" in page.content.decode()
    assert "within the optimiser's tolerance" in page.content.decode()


def test_a_draft_s_impact_waits_for_its_submission(users, django_capture_on_commit_callbacks):
    """A draft can still change, and simulations are kept per pair of versions: the page
    says to submit it first rather than offer a button that is always refused."""
    from governance import services

    limits, draft = _cross_sell_budget_raised(users["maker"])
    url = f"/registry/constraint-sets/{limits.item.name}/v{draft.number}/"
    page = logged_in(users["maker"]).get(url).content.decode()
    assert "Simulate the impact" not in page
    label = f"constraint set {limits.item.name} v{draft.number}"
    assert f"The impact can be simulated once {label} is submitted" in page
    with django_capture_on_commit_callbacks(execute=True):
        refused = logged_in(users["maker"]).post(f"/impact/{draft.pk}/", follow=True)
    (message,) = [str(m) for m in refused.context["messages"]]
    assert message.startswith(f"The impact is simulated once {label} is submitted")
    assert not OptimisationRun.objects.filter(constraint_set_version=draft).exists()
    services.version_submit(actor=users["maker"], version=draft)
    page = logged_in(users["checker"]).get(url).content.decode()
    assert "Simulate the impact" in page and "is submitted: a draft" not in page


def test_a_strategy_and_its_constraint_set_are_reviewed_together(
    users, django_capture_on_commit_callbacks
):
    from governance import services

    maker, checker = users["maker"], users["checker"]
    strategy = Version.objects.get(item__kind="strategy", item__name="cross-sell", number=2)
    limits, new_limits = _cross_sell_budget_raised(maker)
    services.version_submit(actor=maker, version=new_limits)

    url = f"/registry/strategies/cross-sell/v{strategy.number}/"
    page = logged_in(checker).get(url).content.decode()
    # Worded for what Arbiter knows: both are under review for the strategy, not that
    # they were submitted as one change.
    assert (
        f"Also under review for strategy cross-sell: constraint set "
        f"{limits.item.name} v{new_limits.number}."
    ) in page
    assert "Submitted as one change" not in page
    assert f"Approve {limits.item.name} v{new_limits.number}" in page
    # The maker who wrote both sees the four-eyes note, not buttons.
    mine = logged_in(maker).get(url).content.decode()
    assert f"Approve {limits.item.name}" not in mine

    # The impact is this version alone against what is live unless the checker asks for
    # the two together; each comparison is kept and shown on its own.
    alone = f"with strategy cross-sell v{strategy.number} in place"
    both = (
        f"with strategy cross-sell v{strategy.number} and constraint set "
        f"{limits.item.name} v{new_limits.number} in place"
    )
    assert alone in page and both not in page
    assert f'href="{url}?impact=together"' in page
    with django_capture_on_commit_callbacks(execute=True):
        response = logged_in(checker).post(f"/impact/{strategy.pk}/")
    assert response["Location"] == url
    candidate = OptimisationRun.objects.get(strategy_version=strategy)
    assert candidate.constraint_set_version == limits
    together_page = logged_in(checker).get(f"{url}?impact=together").content.decode()
    assert both in together_page and "Simulate the impact" in together_page
    assert 'name="together" value="1"' in together_page
    with django_capture_on_commit_callbacks(execute=True):
        response = logged_in(checker).post(f"/impact/{strategy.pk}/", {"together": "1"})
    assert response["Location"] == f"{url}?impact=together"
    combined = OptimisationRun.objects.get(
        strategy_version=strategy, constraint_set_version=new_limits
    )
    assert combined.status == "succeeded"
    together_page = logged_in(checker).get(f"{url}?impact=together").content.decode()
    assert both in together_page and f"run {combined.pk}</a> (candidate)" in together_page
    # The comparison of this version alone is still there, on its own.
    page = logged_in(checker).get(url).content.decode()
    assert alone in page and f"run {candidate.pk}</a> (candidate)" in page

    # A refusal there names the version it is about and keeps the reason typed.
    client = logged_in(checker)
    reason = "Budget up\u202e, reviewed with the strategy."
    refused = client.post(
        f"/registry/constraint-sets/{limits.item.name}/v{new_limits.number}/move/",
        {"move": "approve", "comment": reason, "next": url},
        follow=True,
    )
    (message,) = [str(m) for m in refused.context["messages"]]
    assert message.startswith(f"Constraint set {limits.item.name} v{new_limits.number}: ")
    assert f'name="comment" rows="2">{reason}</textarea>' in refused.content.decode()
    # Approving the constraint set from the strategy's page comes back to it.
    response = logged_in(checker).post(
        f"/registry/constraint-sets/{limits.item.name}/v{new_limits.number}/move/",
        {"move": "approve", "comment": "Budget up, reviewed with the strategy.", "next": url},
    )
    assert response.status_code == 302 and response["Location"] == url
    new_limits.refresh_from_db()
    assert new_limits.status == "approved"
    # A next that leaves the site is ignored.
    response = logged_in(checker).post(
        f"/registry/strategies/cross-sell/v{strategy.number}/move/",
        {"move": "approve", "comment": "ok", "next": "https://evil.example/"},
    )
    assert response["Location"] == url


def test_independent_changes_to_a_strategy_are_not_shown_or_simulated_as_one(
    users, make_user, django_capture_on_commit_callbacks
):
    """Two makers' unrelated changes to cross-sell's strategy and its limits: neither
    page claims they were submitted together, the strategy's impact stays its own, and
    versions not under review (approved, draft) list nobody else's changes."""
    from governance import services
    from governance.roles import Role

    checker, other_maker = users["checker"], make_user("bo-maker", Role.MAKER)
    strategy = Version.objects.get(item__kind="strategy", item__name="cross-sell", number=2)
    limits, new_limits = _cross_sell_budget_raised(other_maker)
    url = f"/registry/strategies/cross-sell/v{strategy.number}/"
    limits_url = f"/registry/constraint-sets/{limits.item.name}/v{new_limits.number}/"

    # The other maker's limits still in draft: on neither page, and its own page (a
    # draft) lists nothing under review with it.
    page = logged_in(checker).get(url).content.decode()
    assert "Also under review" not in page
    assert "Also under review" not in logged_in(checker).get(limits_url).content.decode()

    services.version_submit(actor=other_maker, version=new_limits)
    with django_capture_on_commit_callbacks(execute=True):
        logged_in(checker).post(f"/impact/{strategy.pk}/")
    page = logged_in(checker).get(url).content.decode()
    assert "Submitted as one change" not in page
    assert "Also under review for strategy cross-sell" in page
    assert "(submitted by bo-maker)" in page
    # The strategy's impact is its own: the other maker's limits are not in its candidate.
    assert f"with strategy cross-sell v{strategy.number} in place" in page
    assert f"and constraint set {limits.item.name} v{new_limits.number} in place" not in page
    run = OptimisationRun.objects.get(strategy_version=strategy)
    assert run.constraint_set_version == limits

    # Once the strategy is approved, its page decides nothing with anyone: no panel, no
    # buttons for the limits, and its comparison is still the strategy alone.
    services.version_approve(actor=checker, version=strategy, comment="Reviewed alone.")
    page = logged_in(checker).get(url).content.decode()
    assert "Also under review" not in page
    assert f"Approve {limits.item.name}" not in page
    assert f"with strategy cross-sell v{strategy.number} in place" in page
    assert "?impact=together" not in page
    # Asking for a combined run by hand is refused, and nothing runs.
    refused = logged_in(checker).post(f"/impact/{strategy.pk}/", {"together": "1"}, follow=True)
    (message,) = [str(m) for m in refused.context["messages"]]
    assert message.startswith(f"Nothing else is under review with cross-sell v{strategy.number}")
    assert not OptimisationRun.objects.filter(constraint_set_version=new_limits).exists()


def test_a_distributed_run_page_says_how_it_was_computed_and_what_was_resent(
    users, django_capture_on_commit_callbacks
):
    maker = logged_in(users["maker"])
    with django_capture_on_commit_callbacks(execute=True):
        maker.post("/optimisation/start/", {"deployment": "cross-sell", "customers": "300"})
    run = OptimisationRun.objects.get()
    execution = {
        "mode": "workers",
        "chunks": 3,
        "chunk_customers": 100,
        "workers": ["a@host", "b@host"],
        "price_iterations": 12,
        "rounds": 15,
        "residual_customers": 40,
        "resent": 0,
    }
    OptimisationRun.objects.filter(pk=run.pk).update(execution=execution)
    page = maker.get(f"/optimisation/{run.pk}/").content.decode()
    assert "in 3 chunks of up to 100 customers by 2 workers (a@host, b@host)" in page
    assert "sent again" not in page
    OptimisationRun.objects.filter(pk=run.pk).update(execution={**execution, "resent": 1})
    page = maker.get(f"/optimisation/{run.pk}/").content.decode()
    assert "; 1 chunk task sent again after losing its worker" in page
    OptimisationRun.objects.filter(pk=run.pk).update(execution={**execution, "resent": 2})
    page = maker.get(f"/optimisation/{run.pk}/").content.decode()
    assert "; 2 chunk tasks sent again after losing their worker" in page


def test_a_runs_page_says_when_its_decisions_were_purged(users, settings):
    from decisions.decision_log import decision_blocks_seal
    from decisions.optimisation import optimisation_run_create, optimisation_run_execute
    from decisions.retention import decision_log_purge

    run = optimisation_run_create(
        actor=users["maker"],
        deployment="cross-sell",
        simulated={"customers": 200, "seed": 5},
        enqueue=False,
    )
    run = optimisation_run_execute(run.pk)
    assert run.decisions_logged == 200
    decision_blocks_seal(grace_seconds=0)
    page = logged_in(users["auditor"]).get(f"/optimisation/{run.pk}/").content.decode()
    assert "200 logged" in page and "download as CSV" in page
    assert "retention purge" not in page

    settings.DECISION_RETENTION_MONTHS = 0  # everything sealed is past retention
    assert decision_log_purge(actor=users["admin"]).rows >= 200
    page = logged_in(users["auditor"]).get(f"/optimisation/{run.pk}/").content.decode()
    assert "200 logged, since removed from the log by a retention purge" in page
    assert "download as CSV" not in page
    assert "Certified gap" in page  # the run's own results stay


def test_the_run_list_pages_past_fifty(users):
    from decisions.optimisation import optimisation_run_create

    first = optimisation_run_create(
        actor=users["maker"], deployment="collections", simulated={"customers": 10}, enqueue=False
    )
    copies = []
    for i in range(51):
        copy = OptimisationRun.objects.get(pk=first.pk)
        copy.pk = None
        copy.description = f"copy {i}"
        copies.append(copy)
    OptimisationRun.objects.bulk_create(copies)
    client = logged_in(users["checker"])
    newest = client.get("/optimisation/").content.decode()
    assert "52 runs, newest first." in newest and "Page 1 of 2" in newest
    assert 'href="?page=2">Older runs</a>' in newest
    assert f'href="/optimisation/{first.pk}/"' not in newest
    oldest = client.get("/optimisation/?page=2").content.decode()
    assert f'href="/optimisation/{first.pk}/"' in oldest and "Newer runs" in oldest
    assert 'http-equiv="refresh"' not in oldest


def test_an_action_whose_terms_change_is_named_as_the_candidate_offers_it(
    users, django_capture_on_commit_callbacks
):
    """Impact rows are matched by action id; when the candidate lowers an APR (and its
    label says so), the row must not read as the old offer's."""
    from decisions import runtime
    from governance import services

    active = runtime.arm_runtime(
        "champion", runtime.active_deployment("onboarding").content
    ).strategy
    content = dict(active.content)
    content["actions"] = [dict(a) for a in content["actions"]]
    (card,) = [a for a in content["actions"] if a["label"] == "Card, $5,000 limit at 24% APR"]
    card["label"] = "Card, $5,000 limit at 22% APR"
    card["attributes"] = {**card["attributes"], "apr": 0.22}
    candidate = services.version_create(
        actor=users["maker"], kind="strategy", name=active.item.name, content=content
    )
    services.version_submit(actor=users["maker"], version=candidate)
    checker = logged_in(users["checker"])
    with django_capture_on_commit_callbacks(execute=True):
        checker.post(f"/impact/{candidate.pk}/")
    page = checker.get(f"/registry/strategies/{active.item.name}/v{candidate.number}/")
    rows = re.findall(r'<th scope="row">([^<]*)</th><td>\d+</td>', page.content.decode())
    assert "Card, $5,000 limit at 24% APR \u2192 Card, $5,000 limit at 22% APR" in rows
    assert "Card, $5,000 limit at 24% APR" not in rows
    # An action whose terms did not change keeps its one label.
    assert "Decline" in rows
