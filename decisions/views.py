"""The decision lookup pages: find a logged decision, read why it was made, replay it.

For auditors, checkers and admins (the roles that may replay). Reads go through
``decisions.selectors`` and replays through ``decisions.services.decision_replay``, the
same calls the REST API makes.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from decisions import replays, selectors, services
from decisions.forms import DecisionFilterForm, ReplaySampleForm
from decisions.models import Decision, LogVerification, ReplayCheck
from governance.exceptions import DomainError
from governance.presentation import VersionRef, display
from governance.ui_access import ui_page

# The decision log is evidence: people who review or audit read it, makers do not.
DECISION_PAGE_ROLES = frozenset(services.REPLAY_ROLES)
SEARCH_LIMIT = 50
COUNT_LIMIT = 10_000  # matches counted exactly up to this; more is "more than"
RECENT = 20


@require_GET
@ui_page(roles=DECISION_PAGE_ROLES, action="look up decisions")
def decision_search(request: HttpRequest) -> HttpResponse:
    """The decision pages' front: the log's integrity and replays, and a search by
    decision id, customer id, deployment and days whose matches download as CSV."""
    deployments = selectors.deployment_name_list()
    form = DecisionFilterForm(request.GET or None, deployments=deployments)
    valid = form.is_bound and form.is_valid()
    searched = valid and any(form.cleaned_data.values())
    # Find with every box empty is no search: the latest decisions, as on arrival.
    recent = not form.is_bound or (valid and not searched)
    decisions: list[Decision] = []
    total, csv_url, replay_initial = 0, "", {}
    if searched:
        selection = form.selection()
        found = selectors.decision_search(actor=request.user, **selection)
        decisions = list(found[:SEARCH_LIMIT])
        total = (
            found[: COUNT_LIMIT + 1].count() if len(decisions) == SEARCH_LIMIT else len(decisions)
        )
        query = selection["query"]
        if decisions and (not query or decisions[0].customer_id == query):  # not a decision id
            csv_url = _csv_url(selection)
        replay_initial = {k: form.cleaned_data[k] for k in ("deployment", "since", "until")}
    elif recent:
        decisions = list(selectors.decision_list(actor=request.user).order_by("-seq")[:RECENT])
    return render(
        request,
        "decisions/decision_search.html",
        {
            "form": form,
            "searched": searched,
            "recent": recent,
            "decisions": decisions,
            "total": total,
            "more_than": total > COUNT_LIMIT,
            "found": (
                f"More than {COUNT_LIMIT:,} decisions found"
                if total > COUNT_LIMIT
                else f"{total:,} decision{'' if total == 1 else 's'} found"
            ),
            "limit": SEARCH_LIMIT,
            "csv_url": csv_url,
            "verification": LogVerification.objects.first(),
            # Its own ids: the search form on the same page has fields of the same names.
            "replay_form": ReplaySampleForm(
                # What was typed into a refused replay, else the search's selection.
                initial=request.session.pop(TYPED_REPLAY, None) or replay_initial,
                deployments=deployments,
                auto_id="replay_%s",
            ),
            "replay_checks": list(selectors.replay_check_list(actor=request.user)[:5]),
        },
    )


def _csv_url(selection: dict[str, Any]) -> str:
    """The API's CSV of every decision ``selection`` selects (a customer's, not a
    decision's: one decision's page has everything)."""
    params = {
        "customer_id": selection["query"],
        "deployment": selection["deployment"],
        "since": selection["since"].isoformat() if selection["since"] else None,
        "until": selection["until"].isoformat() if selection["until"] else None,
    }
    params = {k: v for k, v in params.items() if v}
    return reverse("decisions:decision-list") + "?" + urlencode({**params, "format": "csv"})


@require_POST
@ui_page(roles=DECISION_PAGE_ROLES, action="replay decisions")
def decision_replay_check_start(request: HttpRequest) -> HttpResponse:
    form = ReplaySampleForm(request.POST, deployments=selectors.deployment_name_list())
    if not form.is_valid():
        problems = " ".join(
            f"{(form.fields[name].label or name) if name in form.fields else name}: "
            f"{' '.join(errors)}"
            for name, errors in form.errors.items()
        )
        messages.error(request, f"The replay was not started. {problems}")
        _keep_typed_replay(request, form)
        return redirect("ui:decision-search")
    try:
        check = replays.replay_check_request(actor=request.user, **form.request_arguments())
    except DomainError as exc:
        details = exc.details if isinstance(exc.details, dict) else {}
        named = "".join(
            f" {k}: {'; '.join(map(str, v))}." for k, v in details.items() if k != "filters"
        )
        messages.error(request, exc.message + named)
        _keep_typed_replay(request, form)
        return redirect("ui:decision-search")
    return redirect("ui:decision-replay-check", check_id=check.pk)


TYPED_REPLAY = "replay-form-typed"


def _keep_typed_replay(request: HttpRequest, form: ReplaySampleForm) -> None:
    """The refused replay form's values, shown again on the decisions page (once)."""
    request.session[TYPED_REPLAY] = {name: request.POST.get(name, "")[:100] for name in form.fields}


def _moment(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


@require_GET
@ui_page(roles=DECISION_PAGE_ROLES, action="read replays of the decision log")
def decision_replay_check(request: HttpRequest, check_id: int) -> HttpResponse:
    check = selectors.replay_check_get(actor=request.user, check_id=check_id)
    going = check.status in (ReplayCheck.Status.QUEUED, ReplayCheck.Status.RUNNING)
    target = check.size if check.size is not None else check.population  # None: every one
    if target is not None and check.population is not None:
        target = min(target, check.population)
    return render(
        request,
        "decisions/replay_check.html",
        {
            "check": check,
            "going": going,
            "target": target,
            "percent": round(100 * check.replayed / target) if target else 0,
            "drawn": check.size is not None and (check.population or 0) > check.size,
            "since": _moment(check.filters.get("since")),
            "until": _moment(check.filters.get("until")),
        },
    )


@require_POST
@ui_page(roles=DECISION_PAGE_ROLES, action="verify the decision log")
def decision_log_verify(request: HttpRequest) -> HttpResponse:
    try:
        record = services.decision_log_verify_request(actor=request.user)
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        if record is None:
            messages.info(
                request,
                "The check of the whole decision log is queued; its result shows here when "
                "a worker has run it (about a tenth of a millisecond a decision).",
            )
        elif record.ok:
            messages.success(request, "The decision log verifies.")
        else:
            messages.error(request, "The decision log does not verify.")
    return redirect("ui:decision-search")


def _version_links(decision: Decision) -> list[dict[str, Any]]:
    """Every version the decision used, linked to its page; models by the strategy's refs."""
    versions = decision.versions
    links = []
    for kind, role in (
        ("deployment", "Deployment"),
        ("strategy", "Strategy"),
        ("constraint_set", "Constraint set"),
    ):
        raw = versions.get(kind) or {}
        links.append(
            {
                "role": role,
                "ref": VersionRef.parse(kind, raw),
                "content_hash": raw.get("content_hash", ""),
            }
        )
    models_by_quantity = {
        p["quantity"]: p["model"] for p in decision.strategy_version.content.get("predictions", [])
    }
    for model in versions.get("models", []):
        links.append(
            {
                "role": f"Model for {model.get('quantity')}",
                "ref": VersionRef.parse("model", models_by_quantity.get(model.get("quantity"))),
                "text": model.get("key", ""),
                "content_hash": model.get("content_hash", ""),
            }
        )
    return links


def _pretty(value: Any) -> str:
    if isinstance(value, dict | list):
        return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True)
    return display(value)


def _excluding_rules(decision: Decision, ineligible: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each rule that made an action ineligible, with the description and expression the
    strategy or constraint set version gives it and how many of the actions it excluded:
    where a decline was decided by rules (affordability, arrears), these are its reasons
    before any model's, and a reader needs them in words, not as rule names."""
    defined: dict[str, dict[str, Any]] = {}
    for version, key in (
        (decision.strategy_version, "eligibility"),
        (decision.constraint_set_version, "rules"),
    ):
        content = version.content if version is not None else {}
        for rule in content.get(key) or []:
            if isinstance(rule, dict) and isinstance(rule.get("name"), str):
                defined.setdefault(rule["name"], rule)
    counts: dict[str, int] = {}
    for entry in ineligible:
        for name in entry.get("rules") or []:
            counts[name] = counts.get(name, 0) + 1
    return [
        {
            "name": name,
            "description": str(defined.get(name, {}).get("description") or ""),
            "rule": str(defined.get(name, {}).get("rule") or ""),
            "excluded": count,
        }
        for name, count in sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    ]


def _decision_page(
    request: HttpRequest,
    decision: Decision,
    *,
    replay: Any = None,
    status: int = 200,
    error: str = "",
) -> HttpResponse:
    explanation = decision.explanation or {}
    differences = [
        {
            "field": d.get("field"),
            "logged": _pretty(d.get("logged")),
            "replayed": _pretty(d.get("replayed")),
        }
        for d in (replay.differences if replay is not None else [])
    ]
    return render(
        request,
        "decisions/decision_detail.html",
        {
            "decision": decision,
            "attributes": [(k, display(v)) for k, v in (decision.action or {}).items()],
            "reasons": [{**r, "value": display(r.get("value"))} for r in decision.reasons or []],
            "explanation": explanation,
            "runner_up": explanation.get("runner_up"),
            "price_effects": explanation.get("price_effects", []),
            "ineligible": explanation.get("ineligible", []),
            "excluding_rules": _excluding_rules(decision, explanation.get("ineligible", [])),
            "considered": len(decision.actions or []),
            "actions": decision.actions or [],
            "prices": [(k, display(v)) for k, v in (decision.prices or {}).items()],
            "features": [(k, display(v)) for k, v in (decision.features or {}).items()],
            "versions": _version_links(decision),
            "replay": replay,
            "differences": differences,
            "replay_error": error,
        },
        status=status,
    )


@require_GET
@ui_page(roles=DECISION_PAGE_ROLES, action="look up decisions")
def decision_detail(request: HttpRequest, decision_id: Any) -> HttpResponse:
    decision = selectors.decision_get(actor=request.user, decision_id=str(decision_id))
    return _decision_page(request, decision)


@require_POST
@ui_page(roles=DECISION_PAGE_ROLES, action="replay decisions")
def decision_replay(request: HttpRequest, decision_id: Any) -> HttpResponse:
    """Recompute the decision and show the result on its page. Nothing is written, so the
    answer is rendered directly rather than redirected."""
    decision = selectors.decision_get(actor=request.user, decision_id=str(decision_id))
    try:
        replay = services.decision_replay(actor=request.user, decision=decision)
    except DomainError as exc:
        return _decision_page(request, decision, status=exc.status, error=exc.message)
    return _decision_page(request, decision, replay=replay)
