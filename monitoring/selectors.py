"""Reads of monitoring: outcomes, and the KPI report of a deployment.

The KPI report loads one row per decision of the deployment in the window plus the
outcomes reported on them, into a data frame (``decision_frame``), and computes every
KPI from it with ``monitoring.kpis``: the totals, the daily and weekly trend, the table by
action and the champion/challenger comparison. That holds a few hundred thousand decisions
comfortably; beyond, the aggregation belongs in SQL (see docs/monitoring.md).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
from django.contrib.auth.models import AbstractBaseUser
from django.db.models import QuerySet
from django.utils import timezone

from decisions.models import Decision, OptimisationRun, RunStatus
from decisions.selectors import customer_decisions
from decisions.services import READER_ROLES as DECISION_READER_ROLES
from decisions.services import check_visible
from governance.exceptions import NotFound, ValidationFailed
from governance.models import Item, Version, VersionStatus
from governance.roles import Role, require_role, roles_of
from monitoring import intervals, kpis
from monitoring.kpi_targets import KIND as TARGETS_KIND
from monitoring.models import Outcome

#: Who reads KPIs: everyone but downstream systems (whose view would mix in other
#: clients' decisions).
KPI_READER_ROLES = frozenset({Role.MAKER, Role.CHECKER, Role.AUDITOR, Role.ADMIN})
OUTCOME_READER_ROLES = frozenset(DECISION_READER_ROLES)
DEFAULT_WINDOW = timedelta(days=28)
MAX_WINDOW = timedelta(days=366)
_APPROVED = (VersionStatus.APPROVED, VersionStatus.ACTIVE, VersionStatus.RETIRED)


# --- outcomes -------------------------------------------------------------------------


def outcome_list(
    *,
    actor: AbstractBaseUser,
    decision_id: str | None = None,
    deployment: str | None = None,
    event: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> QuerySet[Outcome]:
    """Outcomes the actor may see: all for auditors, checkers and admins; an API client's
    only on its own decisions. ``since``/``until`` bound when the event happened."""
    require_role(actor, OUTCOME_READER_ROLES, action="read outcomes")
    outcomes = Outcome.objects.select_related("decision", "batch")
    if not roles_of(actor) & (OUTCOME_READER_ROLES - {Role.API_CLIENT}):
        outcomes = outcomes.filter(decision__client=actor)
    if decision_id:
        try:
            key = uuid.UUID(decision_id)
        except ValueError:
            raise ValidationFailed(
                "decision_id must be a UUID.", details={"decision_id": ["must be a UUID"]}
            ) from None
        decision = Decision.objects.filter(decision_id=key).first()
        if decision is None:
            raise NotFound(f"There is no decision {decision_id}.")
        check_visible(actor, decision)
        outcomes = outcomes.filter(decision_id=key)
    if deployment:
        outcomes = outcomes.filter(decision__deployment_name=deployment)
    if event:
        outcomes = outcomes.filter(event=event)
    if since:
        outcomes = outcomes.filter(occurred_at__gte=since)
    if until:
        outcomes = outcomes.filter(occurred_at__lt=until)
    return outcomes


# --- KPIs -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    since: datetime
    until: datetime


def kpi_window(*, since: datetime | None, until: datetime | None) -> Window:
    """The report window: ``until`` defaults to now, ``since`` to 28 days before it."""
    until = until or timezone.now()
    since = since or until - DEFAULT_WINDOW
    if since >= until:
        raise ValidationFailed(
            "since must be before until.", details={"since": ["must be before until"]}
        )
    if until - since > MAX_WINDOW:
        raise ValidationFailed(
            "The window is longer than 366 days.",
            details={"since": ["the window may span at most 366 days"]},
        )
    return Window(since.astimezone(UTC), until.astimezone(UTC))


def _action_cost(action: Any) -> float:
    if not isinstance(action, dict):
        return 0.0
    total = 0.0
    for name in kpis.COST_ATTRIBUTES:
        value = action.get(name)
        if isinstance(value, int | float) and not isinstance(value, bool):
            total += float(value)
    return total


def cohort_decisions(*, deployment: str, window: Window) -> QuerySet[Decision]:
    """The decisions KPIs measure: ``deployment``'s about real customers made in ``window``
    (runs on simulated customers left out)."""
    return customer_decisions().filter(
        deployment_name=deployment,
        created_at__gte=window.since,
        created_at__lt=window.until,
    )


def cohort_outcomes(*, deployment: str, window: Window) -> QuerySet[Outcome]:
    """The outcomes reported so far on ``cohort_decisions``, and only on them."""
    decisions = cohort_decisions(deployment=deployment, window=window)
    return Outcome.objects.filter(decision_id__in=decisions.values("decision_id"))


def decision_frame(*, deployment: str, window: Window) -> pd.DataFrame:
    """One row per decision of ``deployment`` made in ``window``, with its outcomes so far
    (the columns ``monitoring.kpis`` describes)."""
    rows = list(
        cohort_decisions(deployment=deployment, window=window)
        .order_by("seq")
        .values_list(
            "decision_id",
            "created_at",
            "arm",
            "action_id",
            "customer_id",
            "value",
            "latency_ms",
            "action",
            "strategy_version_id",
            "run_id",
        )
    )
    if not rows:
        return kpis.empty_frame()
    fallbacks = {
        pk: (content or {}).get("fallback_action")
        for pk, content in Version.objects.filter(pk__in={r[8] for r in rows}).values_list(
            "pk", "content"
        )
    }
    frame = pd.DataFrame(
        {
            "decision_id": [r[0] for r in rows],
            "created_at": pd.to_datetime([r[1] for r in rows], utc=True),
            "arm": [r[2] for r in rows],
            "action_id": [r[3] for r in rows],
            "customer_id": [r[4] for r in rows],
            "value": [float(r[5]) for r in rows],
            # An optimisation run's decisions have no request latency: NaN, not 0.
            "latency_ms": [float(r[6]) if r[9] is None else np.nan for r in rows],
            "is_offer": [int(r[3] != fallbacks.get(r[8])) for r in rows],
            "cost": [_action_cost(r[7]) for r in rows],
        }
    )
    events = pd.DataFrame(
        list(
            cohort_outcomes(deployment=deployment, window=window).values_list(
                "decision_id", "event", "amount"
            )
        ),
        columns=["decision_id", "event", "amount"],
    )
    events["amount"] = events["amount"].map(lambda a: float(a) if a is not None else 0.0)
    flags = (
        pd.crosstab(events["decision_id"], events["event"]).clip(upper=1)
        if len(events)
        else pd.DataFrame()
    )
    for event in kpis.EVENTS:
        column = flags[event] if event in flags else pd.Series(dtype=np.int64)
        frame[event] = frame["decision_id"].map(column).fillna(0).astype("int64")
    sums = events.groupby(["decision_id", "event"])["amount"].sum()
    for event, column in (("paid", "paid_amount"), ("defaulted", "loss_amount")):
        by_decision = sums.xs(event, level="event") if event in set(events["event"]) else None
        frame[column] = (
            frame["decision_id"].map(by_decision).fillna(0.0).astype(float)
            if by_decision is not None
            else 0.0
        )
    return frame[list(kpis.FRAME_COLUMNS)]


def _deployment_items(deployment: str) -> list[tuple[str, str]]:
    """(kind, name) of every governed item the deployment uses, itself included."""
    items = {("deployment", deployment), (TARGETS_KIND, deployment)}
    for content in Version.objects.filter(
        item__kind="deployment", item__name=deployment
    ).values_list("content", flat=True):
        for arm in [content, *content.get("challengers", [])]:
            for kind in ("strategy", "constraint_set"):
                reference = arm.get(kind)
                if isinstance(reference, dict) and "name" in reference:
                    items.add((kind, str(reference["name"])))
    return sorted(items)


def review_cycles(*, deployment: str, window: Window) -> list[tuple[datetime, float]]:
    """(approved at, hours from submission) of every version of the deployment's items
    approved in ``window``."""
    out = []
    for kind, name in _deployment_items(deployment):
        versions = Version.objects.filter(
            item__kind=kind,
            item__name=name,
            status__in=_APPROVED,
            submitted_at__isnull=False,
            reviewed_at__gte=window.since,
            reviewed_at__lt=window.until,
        ).values_list("submitted_at", "reviewed_at")
        for submitted, reviewed in versions:
            out.append((reviewed, (reviewed - submitted).total_seconds() / 3600.0))
    return sorted(out)


def kpi_targets_active(*, deployment: str) -> Version | None:
    return (
        Version.objects.select_related("item")
        .filter(item__kind=TARGETS_KIND, item__name=deployment, status=VersionStatus.ACTIVE)
        .first()
    )


def optimisation_runs(*, deployment: str, window: Window) -> list[tuple[datetime, float, float]]:
    """(finished at, minutes from start to finish, certified gap) of the deployment's
    optimisation runs that succeeded in the window."""
    runs = OptimisationRun.objects.filter(
        deployment_name=deployment,
        status=RunStatus.SUCCEEDED,
        finished_at__gte=window.since,
        finished_at__lt=window.until,
    ).values_list("started_at", "finished_at", "gap")
    return [
        (finished, (finished - started).total_seconds() / 60, gap)
        for started, finished, gap in runs
        if started and finished and gap is not None
    ]


def optimisation_run_kpis(runs: list[tuple[datetime, float, float]]) -> dict[str, float | None]:
    """Median run time in minutes and the largest certified gap of ``runs``."""
    return {
        "optimisation_run_minutes": kpis.median([minutes for _, minutes, _ in runs]),
        "optimisation_gap": max((gap for _, _, gap in runs), default=None),
    }


def _periods(window: Window, *, weekly: bool) -> list[date]:
    first = window.since.date()
    last = (window.until - timedelta(microseconds=1)).date()
    if weekly:
        first -= timedelta(days=first.weekday())
    step = timedelta(days=7 if weekly else 1)
    out = []
    while first <= last:
        out.append(first)
        first += step
    return out


def _series(
    frame: pd.DataFrame,
    cycles: list[tuple[datetime, float]],
    runs: list[tuple[datetime, float, float]],
    window: Window,
    *,
    weekly: bool,
) -> dict[str, list[dict[str, Any]]]:
    periods = _periods(window, weekly=weekly)
    days = frame["created_at"].dt.tz_convert(UTC).dt.date
    if weekly:
        days = days.map(lambda d: d - timedelta(days=d.weekday()))
    groups = {period: group for period, group in frame.groupby(days)} if len(frame) else {}
    empty = kpis.empty_frame()
    out: dict[str, list[dict[str, Any]]] = {key: [] for key in kpis.KPIS}
    for period in periods:
        values = kpis.kpi_values(groups.get(period, empty))
        span = timedelta(days=7 if weekly else 1)
        values["review_cycle_hours"] = kpis.median(
            [hours for at, hours in cycles if period <= at.astimezone(UTC).date() < period + span]
        )
        values.update(
            optimisation_run_kpis(
                [r for r in runs if period <= r[0].astimezone(UTC).date() < period + span]
            )
        )
        for key in kpis.KPIS:
            out[key].append({"start": period, "value": values[key]})
    return out


def kpi_report(
    *,
    actor: AbstractBaseUser,
    deployment: str,
    since: datetime | None = None,
    until: datetime | None = None,
) -> dict[str, Any]:
    """Every KPI of ``deployment`` for decisions made in the window: value, governed target
    (the active ``kpi_targets`` version), whether it is met, daily and weekly series, the
    figures by action and the champion/challenger comparison with 95% intervals.

    Raises ``PermissionDenied`` (API clients and people without a role), ``NotFound``
    (no such deployment), ``ValidationFailed`` (a bad window).
    """
    return _kpis(actor=actor, deployment=deployment, since=since, until=until, trends=True)


def kpi_headline(
    *,
    actor: AbstractBaseUser,
    deployment: str,
    since: datetime | None = None,
    until: datetime | None = None,
) -> dict[str, Any]:
    """``kpi_report`` without what only a deployment's own page shows: the daily and
    weekly series (each KPI again for every day: most of the report's cost), the figures
    by action and the arms. For the monitoring index, one row per deployment."""
    return _kpis(actor=actor, deployment=deployment, since=since, until=until, trends=False)


def _kpis(
    *,
    actor: AbstractBaseUser,
    deployment: str,
    since: datetime | None,
    until: datetime | None,
    trends: bool,
) -> dict[str, Any]:
    require_role(actor, KPI_READER_ROLES, action="read KPIs")
    if not Item.objects.filter(kind="deployment", name=deployment).exists():
        raise NotFound(f"There is no deployment called {deployment!r}.")
    window = kpi_window(since=since, until=until)
    frame = decision_frame(deployment=deployment, window=window)
    cycles = review_cycles(deployment=deployment, window=window)
    values = kpis.kpi_values(frame)
    values["review_cycle_hours"] = kpis.median([hours for _, hours in cycles])
    runs = optimisation_runs(deployment=deployment, window=window)
    values.update(optimisation_run_kpis(runs))
    targets_version = kpi_targets_active(deployment=deployment)
    targets = targets_version.content["targets"] if targets_version else {}
    none: dict[str, list[dict[str, Any]]] = {key: [] for key in kpis.KPIS}
    daily = _series(frame, cycles, runs, window, weekly=False) if trends else none
    weekly = _series(frame, cycles, runs, window, weekly=True) if trends else none
    return {
        "deployment": deployment,
        "since": window.since,
        "until": window.until,
        "decisions": len(frame),
        # The decisions' outcomes, as the KPIs count them: none of a simulated run's.
        "outcomes": cohort_outcomes(deployment=deployment, window=window).count(),
        "targets_version": (
            {"name": deployment, "version": targets_version.number} if targets_version else None
        ),
        "kpis": [
            {
                "key": kpi.key,
                "label": kpi.label,
                "family": kpi.family,
                "unit": kpi.unit,
                "better": kpi.better,
                "description": kpi.description,
                "value": values.get(kpi.key),
                "target": targets.get(kpi.key, {}).get("target"),
                "direction": targets.get(kpi.key, {}).get("direction"),
                "met": kpis.target_met(values.get(kpi.key), targets.get(kpi.key)),
                "daily": daily[kpi.key],
                "weekly": weekly[kpi.key],
            }
            for kpi in kpis.KPIS.values()
        ],
        "by_action": kpis.action_table(frame) if trends else [],
        "arms": kpis.arm_comparison(frame) if trends else {},
        "methods": {
            "rate_interval": intervals.METHOD_RATE,
            "difference_interval": intervals.METHOD_DIFFERENCE,
            "confidence": intervals.CONFIDENCE,
            "percentiles": "linear interpolation between order statistics",
        },
    }
