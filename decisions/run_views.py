"""Reviewer pages of optimisation runs: the list with a start form, a run's page (progress,
results, limits, expected KPIs), cancel and publish-prices buttons.

Every read and write goes through ``decisions.optimisation``, the services the REST API
calls, so roles and four eyes are checked there as well as here. A page of a run still
going refreshes itself every few seconds (no JavaScript needed).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from decisions import optimisation
from decisions.models import OptimisationRun, RunStatus
from decisions.selectors import deployment_active_list
from decisions.services import REPLAY_ROLES
from governance.exceptions import DomainError
from governance.presentation import VersionRef
from governance.roles import Role, roles_of
from governance.ui_access import ui_page

RUN_PAGE_ROLES = frozenset({Role.MAKER, Role.CHECKER, Role.AUDITOR, Role.ADMIN})
LIST_LIMIT = 50


def _runs_for(request: HttpRequest, limit: int) -> list[OptimisationRun]:
    return list(optimisation.optimisation_run_list(actor=request.user)[:limit])


@require_GET
@ui_page(roles=RUN_PAGE_ROLES, action="read optimisation runs")
def run_list(request: HttpRequest) -> HttpResponse:
    can_start = bool(roles_of(request.user) & optimisation.CREATOR_ROLES)
    page = Paginator(optimisation.optimisation_run_list(actor=request.user), LIST_LIMIT).get_page(
        request.GET.get("page")
    )
    runs = list(page.object_list)
    return render(
        request,
        "decisions/run_list.html",
        {
            "runs": runs,
            "page": page,
            "typed": request.session.pop(TYPED_RUN, None) or {},
            "max_customers": settings.OPTIMISATION_MAX_CUSTOMERS,
            "can_start": can_start,
            "deployments": [v.item.name for v in deployment_active_list()] if can_start else [],
            "refresh": page.number == 1
            and any(r.status in (RunStatus.QUEUED, RunStatus.RUNNING) for r in runs[:10]),
        },
    )


@require_POST
@ui_page(roles=optimisation.CREATOR_ROLES, action="start optimisation runs")
def run_start(request: HttpRequest) -> HttpResponse:
    data = request.POST
    upload = request.FILES.get("population")
    # A refusal comes back to the form with what was typed (not the file: browsers do not
    # let a page fill a file box).
    typed: dict[str, Any] = {
        k: data.get(k, "")[:400] for k in ("deployment", "customers", "seed", "description")
    }
    # One box per population, so that each has its own default without a script: a file
    # of real customers is logged unless unticked, a simulation only when ticked (its
    # decisions are left out of KPIs and drift, and would only crowd the log).
    logged = data.getlist("log_decisions")
    typed["log_decisions"] = [v for v in logged if v in ("file", "simulated")]
    log_decisions = ("file" if upload else "simulated") in logged
    try:
        customers = int(data.get("customers") or 5000)
        seed = int(data.get("seed") or 1)
    except ValueError:
        request.session[TYPED_RUN] = typed
        messages.error(request, "Customers and seed must be whole numbers.")
        return redirect("ui:run-list")
    try:
        run = optimisation.optimisation_run_create(
            actor=request.user,
            deployment=data.get("deployment", "").strip(),
            population_file=upload.file if upload else None,
            population_filename=upload.name if upload else "",
            simulated=None if upload else {"customers": customers, "seed": seed},
            description=data.get("description", "").strip(),
            log_decisions=log_decisions,
        )
    except DomainError as exc:
        request.session[TYPED_RUN] = typed
        messages.error(request, _run_refusal(exc))
        return redirect("ui:run-list")
    return redirect("ui:run-detail", run_id=run.pk)


FORM_LABELS = {
    "simulated.customers": "Customers",
    "simulated.seed": "Seed",
    "description": "Description",
}
TYPED_RUN = "run-form-typed"
TYPED_NOTE = "run-publish-note"


def _run_refusal(exc: DomainError) -> str:
    """The service's refusal in the form's words: its sentence, or, where the message is
    only ``field: problem``, each problem under the label the form shows."""
    details = exc.details if isinstance(exc.details, dict) else {}
    if any(exc.message.startswith(f"{field}:") for field in details):
        text = "; ".join(
            f"{FORM_LABELS.get(field, field)}: {'; '.join(map(str, problems))}"
            for field, problems in details.items()
        )
        text += "."
    else:
        text = exc.message
    if "not started" in text:  # the service's sentence says so already (a broker down)
        return text[:600]
    return f"The run was not started. {text}"[:600]


def _percent(share: float | None) -> float | None:
    """A share as a percentage to a tenth: 99.6%, not a rounded-up 100%."""
    return None if share is None else 100 * share


def _limits_rows(run: OptimisationRun) -> list[dict[str, Any]]:
    rows = []
    for limit in run.limits:
        share = limit.get("utilisation")
        rows.append({**limit, "percent": None if share is None else round(100 * share, 1)})
    return rows


@require_GET
@ui_page(roles=RUN_PAGE_ROLES, action="read optimisation runs")
def run_detail(request: HttpRequest, run_id: int) -> HttpResponse:
    run = optimisation.optimisation_run_get(actor=request.user, run_id=run_id)
    roles = roles_of(request.user)
    going = run.status in (RunStatus.QUEUED, RunStatus.RUNNING)
    deployment_ref = (
        VersionRef("deployment", run.deployment_name, run.deployment_version.number)
        if run.deployment_version
        else None
    )
    can_publish = (
        run.status == RunStatus.SUCCEEDED
        and bool(run.deployment_name)
        and run.published_version is None
        and bool(roles & optimisation.PUBLISHER_ROLES)
    )
    published = (
        VersionRef("deployment", run.deployment_name, run.published_version.number)
        if run.published_version
        else None
    )
    quantities = sorted(run.kpis.get("total", {}).get("mean", {}))
    # A retention purge (decisions.retention) removes a run's decisions, not the run.
    purged = (
        run.status == RunStatus.SUCCEEDED
        and run.decisions_logged > 0
        and not run.decisions.exists()
    )
    return render(
        request,
        "decisions/run_detail.html",
        {
            "run": run,
            # A refused proposal's change note, typed again for the next try.
            "typed_note": request.session.pop(f"{TYPED_NOTE}-{run.pk}", ""),
            "purged": purged,
            "going": going,
            "max_attempts": settings.OPTIMISATION_MAX_ATTEMPTS,
            "deployment_ref": deployment_ref,
            "strategy_ref": VersionRef(
                "strategy", run.strategy_version.item.name, run.strategy_version.number
            ),
            "constraint_set_ref": VersionRef(
                "constraint_set",
                run.constraint_set_version.item.name,
                run.constraint_set_version.number,
            ),
            "limits": _limits_rows(run),
            "price_agreement": _percent(run.kpis.get("price_agreement")),
            "quantities": quantities,
            "actions": [
                {
                    **a,
                    "means": [a["mean"].get(q) for q in quantities],
                    "percent": _percent(a.get("share")),
                }
                for a in run.kpis.get("per_action", [])
                if a["customers"]
            ],
            "can_cancel": going
            and (
                Role.ADMIN in roles
                or (run.created_by_id == request.user.pk and Role.MAKER in roles)
            ),
            "can_publish": can_publish,
            "published": published,
            "csv_url": reverse("decisions:run-decisions", kwargs={"run_id": run.pk}) + "?format=csv"
            if roles & optimisation.DECISION_READER_ROLES
            else "",
            "can_replay": bool(roles & REPLAY_ROLES)
            and run.status == RunStatus.SUCCEEDED
            and run.decisions_logged > 0
            and not purged,
        },
    )


@require_POST
@ui_page(roles=optimisation.CREATOR_ROLES, action="cancel optimisation runs")
def run_cancel(request: HttpRequest, run_id: int) -> HttpResponse:
    run = optimisation.optimisation_run_get(actor=request.user, run_id=run_id)
    try:
        run = optimisation.optimisation_run_cancel(actor=request.user, run=run)
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(
            request,
            "Cancelled."
            if run.status == RunStatus.CANCELLED
            else "Asked to stop: the run stops at its next step and logs nothing.",
        )
    return redirect("ui:run-detail", run_id=run_id)


@require_POST
@ui_page(roles=optimisation.PUBLISHER_ROLES, action="publish optimisation prices")
def run_publish(request: HttpRequest, run_id: int) -> HttpResponse:
    run = optimisation.optimisation_run_get(actor=request.user, run_id=run_id)
    note = request.POST.get("comment", "").strip()
    try:
        version = optimisation.optimisation_prices_publish(
            actor=request.user, run=run, comment=note
        )
    except DomainError as exc:
        messages.error(request, exc.message)
        request.session[f"{TYPED_NOTE}-{run.pk}"] = note[:1000]
        return redirect("ui:run-detail", run_id=run_id)
    messages.success(
        request,
        f"Deployment {version.item.name} v{version.number} with these prices is submitted "
        "for review; a checker approves and activates it.",
    )
    return redirect("ui:run-detail", run_id=run_id)


def latest_runs_context(request: HttpRequest) -> dict[str, Any]:
    return {"runs": _runs_for(request, 5)}


# --- the run a deployment version's prices come from ------------------------------------


def price_source_panel_context(request: HttpRequest, version: Any) -> dict[str, Any] | None:
    """For a deployment version proposed from an optimisation run's prices: that run, its
    certified gap and limits, so a checker reads where the prices come from."""
    if version.item.kind != "deployment":
        return None
    run = (
        OptimisationRun.objects.filter(published_version=version)
        .select_related("strategy_version__item", "constraint_set_version__item")
        .first()
    )
    if run is None:
        return None
    return {"run": run, "limits": _limits_rows(run)}


# --- the simulated impact on the version page ----------------------------------------


def _version_label(version: Any) -> str:
    from governance.kinds import kind_get

    return f"{kind_get(version.item.kind).label} {version.item.name} v{version.number}"


def impact_panel_context(request: HttpRequest, version: Any) -> dict[str, Any] | None:
    """The version page's impact panel: None for versions with nothing to compare."""
    from decisions.impact import (
        IMPACT_ROLES,
        impact_comparison,
        impact_pair,
        impact_partner,
        impact_runs,
    )
    from governance.views import version_url

    if version.status not in ("submitted", "approved", "draft"):
        return None
    # This version alone against what is live, unless the checker asks (?impact=together)
    # for the other half under review to be put in place with it.
    partner = impact_partner(version)
    together = partner is not None and request.GET.get("impact") == "together"
    pair = impact_pair(version, together=together)
    if pair is None:
        return None
    baseline, candidate = impact_runs(pair)
    runs = [r for r in (baseline, candidate) if r is not None]
    done = len(runs) == 2 and all(r.status == RunStatus.SUCCEEDED for r in runs)
    return {
        "impact": {
            "pair": pair,
            "population": pair.population,
            "population_label": pair.population_label,
            "runs": runs,
            "baseline": baseline,
            "candidate": candidate,
            "comparison": impact_comparison(pair, baseline, candidate) if done else None,
            "can_start": bool(roles_of(request.user) & IMPACT_ROLES)
            and pair.population is not None
            and not pair.drafts
            and len(runs) < 2,
            "version": version,
            "partner": partner,
            "partner_label": _version_label(partner) if partner else "",
            "together": together,
            "alone_url": version_url(version),
            "together_url": f"{version_url(version)}?impact=together",
        },
        "refresh": any(r.status in (RunStatus.QUEUED, RunStatus.RUNNING) for r in runs),
    }


@require_POST
@ui_page(roles=frozenset({Role.MAKER, Role.CHECKER, Role.ADMIN}), action="simulate impact")
def impact_start(request: HttpRequest, version_id: int) -> HttpResponse:
    from decisions.impact import impact_start as start
    from governance.models import Version
    from governance.views import version_url

    version = Version.objects.select_related("item").filter(pk=version_id).first()
    if version is None:
        messages.error(request, "There is no such version.")
        return redirect("ui:dashboard")
    together = request.POST.get("together") == "1"
    try:
        start(actor=request.user, version=version, together=together)
    except DomainError as exc:
        messages.error(request, exc.message)
        together = False
    url = version_url(version)
    return redirect(f"{url}?impact=together" if together else url)
