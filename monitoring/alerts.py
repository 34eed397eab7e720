"""Alerts: evaluating the governed alert rules, storing each breach, e-mailing it once.

``alerts_evaluate`` checks every rule of every active ``alert_rules`` version (Celery beat
runs it hourly; admins run it on demand from the alerts page or with
``manage.py evaluate_alerts``):

- a rule found **breached** with no open alert opens one (``Alert``) and e-mails the rule's
  recipients; breached again at the next run, the open alert is updated and nobody is
  e-mailed again;
- a rule found **not breached** clears its open alert; the next breach is a new alert and a
  new e-mail;
- a rule that **cannot be evaluated** now (too few decisions, no target, no drift report
  yet) leaves its alert as it is;
- an open alert whose rule is no longer in force (removed from the active version, or the
  version retired) is cleared.

The partial unique constraint "one open alert per deployment and rule" backs the once-per-
breach rule against two evaluations racing. E-mails go out after the alert is committed; a
claim on ``notify_attempts`` makes sure one evaluation sends, and a failed send is retried
by the next evaluation, up to ``MAX_NOTIFY_ATTEMPTS`` times.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.mail import EmailMessage
from django.db import IntegrityError, transaction
from django.db.models import F, QuerySet
from django.utils import timezone

from governance.exceptions import NotFound
from governance.models import Version, VersionStatus
from governance.roles import Role, require_role
from monitoring.alert_rules import KIND as RULES_KIND
from monitoring.alert_rules import SCORE
from monitoring.charts import format_kpi
from monitoring.kpis import KPIS
from monitoring.models import Alert, AlertStatus, DriftReport, DriftStatus
from monitoring.selectors import KPI_READER_ROLES, kpi_report

logger = logging.getLogger(__name__)

#: Who may run an evaluation on demand (it e-mails people).
EVALUATOR_ROLES = frozenset({Role.ADMIN})
MAX_NOTIFY_ATTEMPTS = 3
NO_DRIFT_REPORT = "no drift report yet"


@dataclass(frozen=True)
class MonitoringReader:
    """The platform itself reading KPIs for a scheduled job (alerts, the executive report).

    Not a database user: it holds the auditor role only, through the per-object role cache
    ``governance.roles.roles_of`` reads first, so ``kpi_report``'s role check applies to it
    like to anyone and it can never write.
    """

    username: str = "arbiter-monitoring"
    is_authenticated: bool = True
    is_active: bool = True
    pk: None = None
    _arbiter_roles: frozenset[str] = frozenset({Role.AUDITOR})


SYSTEM_READER: Any = MonitoringReader()


@dataclass(frozen=True)
class RuleCheck:
    """What one rule found: ``breached`` is None when it cannot be evaluated now."""

    breached: bool | None
    message: str
    observed: float | None = None
    threshold: float | None = None


@dataclass(frozen=True)
class RuleResult:
    deployment: str
    rule: str
    kind: str
    state: Literal["opened", "still_open", "cleared", "ok", "not_evaluated"]
    message: str
    alert_id: int | None = None


@dataclass
class Evaluation:
    evaluated_at: datetime
    results: list[RuleResult] = field(default_factory=list)
    notified: int = 0
    notify_failed: int = 0

    def count(self, state: str) -> int:
        return sum(1 for r in self.results if r.state == state)

    def summary(self) -> str:
        return (
            f"{len(self.results)} rules checked: {self.count('opened')} new alerts, "
            f"{self.count('still_open')} still open, {self.count('cleared')} cleared, "
            f"{self.count('ok')} fine, {self.count('not_evaluated')} not evaluated; "
            f"{self.notified} e-mails sent, {self.notify_failed} failed."
        )


# --- the conditions -------------------------------------------------------------------


class KpiReports:
    """``kpi_report`` per (deployment, window): several rules on one window share one."""

    def __init__(self, now: datetime) -> None:
        self.now = now
        self._cache: dict[tuple[str, int], dict[str, Any]] = {}

    def get(self, deployment: str, days: int) -> dict[str, Any]:
        key = (deployment, days)
        if key not in self._cache:
            self._cache[key] = kpi_report(
                actor=SYSTEM_READER,
                deployment=deployment,
                since=self.now - timedelta(days=days),
                until=self.now,
            )
        return self._cache[key]


def kpi_rule_check(rule: dict[str, Any], report: dict[str, Any]) -> RuleCheck:
    """A ``kpi_below_target`` rule against a KPI report: breached when ``met`` is False."""
    key = rule["kpi"]
    label = KPIS[key].label
    row = next(k for k in report["kpis"] if k["key"] == key)
    days = rule["window_days"]
    if report["decisions"] < rule["min_decisions"]:
        return RuleCheck(
            None,
            f"only {report['decisions']} decisions in the last {days} days; the rule needs "
            f"{rule['min_decisions']}",
        )
    if row["target"] is None:
        return RuleCheck(None, f"{label} has no governed target (kpi_targets) to miss")
    if row["value"] is None:
        return RuleCheck(None, f"{label} has nothing to measure in the last {days} days")
    words = "at least" if row["direction"] == "at_least" else "at most"
    message = (
        f"{label} is {format_kpi(key, row['value'])} over the last {days} days "
        f"({report['decisions']} decisions); the target is {words} "
        f"{format_kpi(key, row['target'])}."
    )
    return RuleCheck(row["met"] is False, message, row["value"], row["target"])


def drift_latest(model: str) -> DriftReport | None:
    """The latest drift report (by window end) of any version of ``model``, or None."""
    from monitoring.drift_selectors import drift_report_latest

    return drift_report_latest(model=model)


def psi_of(report: DriftReport) -> dict[str, float]:
    """Feature (and ``score``) -> PSI of a drift report, every feature included."""
    out = {
        str(f["name"]): float(f["psi"])
        for f in report.features or []
        if isinstance(f, dict) and isinstance(f.get("psi"), int | float)
    }
    if report.psi_score is not None:
        out[SCORE] = float(report.psi_score)
    return out


def set_by_strategy(report: DriftReport) -> set[str]:
    """The features a drift report marks as set by the strategy (the chosen action's
    terms): shown with their PSI, left out of its status and largest PSI."""
    marked = {
        str(f["name"])
        for f in report.features or []
        if isinstance(f, dict) and f.get("set_by") == "strategy"
    }
    listed = (report.parameters or {}).get("set_by_strategy") or []
    return marked | {str(name) for name in listed}


def drift_rule_check(rule: dict[str, Any]) -> RuleCheck:
    """A ``drift_share`` or ``psi`` rule against the model's latest drift report."""
    model, threshold = rule["model"], float(rule["threshold"])
    report = drift_latest(model)
    if report is None:
        return RuleCheck(None, f"model {model}: {NO_DRIFT_REPORT}")
    if report.status == DriftStatus.NO_DATA:
        return RuleCheck(None, f"model {model}: no decisions in the latest drift window")
    if rule["kind"] == "drift_share":
        share = report.share_drifted
        if share is None:
            return RuleCheck(None, f"model {model}: the drift report has no drifted share")
        return RuleCheck(
            share > threshold,
            f"{100 * share:.1f}% of model {model}'s features drifted (threshold "
            f"{100 * threshold:.1f}%).",
            share,
            threshold,
        )
    psi = psi_of(report)
    strategy = set_by_strategy(report)
    feature = rule.get("feature") or ""
    if feature in strategy:
        # Refused at review now; a rule approved earlier would alarm on the strategy
        # choosing offers unlike the training history's, as it is meant to.
        return RuleCheck(
            None,
            f"model {model}: {feature} is set by the strategy, not the customer; drift "
            "reports leave it out of their status",
        )
    if feature:
        if feature not in psi:
            return RuleCheck(None, f"model {model}: the drift report has no PSI for {feature}")
        return RuleCheck(
            psi[feature] > threshold,
            f"PSI of {feature} of model {model} is {psi[feature]:.3f} (threshold {threshold:.3f}).",
            psi[feature],
            threshold,
        )
    # The drift report's own largest PSI (``psi_max``): customer inputs and the score.
    watched = {key: value for key, value in psi.items() if key not in strategy}
    if not watched:
        return RuleCheck(None, f"model {model}: the drift report has no PSI")
    name, value = max(watched.items(), key=lambda item: item[1])
    return RuleCheck(
        value > threshold,
        f"Largest PSI of model {model} (customer inputs and score) is {value:.3f}, of "
        f"{name} (threshold {threshold:.3f}).",
        value,
        threshold,
    )


def rule_check(rule: dict[str, Any], *, deployment: str, reports: KpiReports) -> RuleCheck:
    if rule["kind"] == "kpi_below_target":
        return kpi_rule_check(rule, reports.get(deployment, rule["window_days"]))
    return drift_rule_check(rule)


# --- state ----------------------------------------------------------------------------


def _open_alert(deployment: str, rule: str) -> Alert | None:
    return (
        Alert.objects.select_for_update()
        .filter(deployment_name=deployment, rule_name=rule, status=AlertStatus.OPEN)
        .first()
    )


def alert_record(
    *,
    version: Version,
    rule: dict[str, Any],
    check: RuleCheck,
    now: datetime,
) -> RuleResult:
    """Apply one rule's finding to its alert: open, keep, clear or leave it.

    Locks the open alert of the rule (if any); a concurrent evaluation that opened it first
    makes this one's insert fail on the partial unique constraint, which is reported as
    ``still_open`` and sends nothing.
    """
    deployment = version.item.name
    base = {"deployment": deployment, "rule": rule["name"], "kind": rule["kind"]}
    with transaction.atomic():
        alert = _open_alert(deployment, rule["name"])
        if check.breached is None:
            return RuleResult(**base, state="not_evaluated", message=check.message)
        if not check.breached:
            if alert is None:
                return RuleResult(**base, state="ok", message=check.message)
            alert.status = AlertStatus.CLEARED
            alert.cleared_at = now
            alert.save(update_fields=["status", "cleared_at"])
            return RuleResult(**base, state="cleared", message=check.message, alert_id=alert.pk)
        if alert is not None:
            alert.last_seen_at = now
            alert.observed = check.observed
            alert.threshold = check.threshold
            alert.message = check.message
            alert.rules_version = version
            alert.recipients = rule["recipients"]
            alert.save(
                update_fields=[
                    "last_seen_at",
                    "observed",
                    "threshold",
                    "message",
                    "rules_version",
                    "recipients",
                ]
            )
            return RuleResult(**base, state="still_open", message=check.message, alert_id=alert.pk)
        try:
            with transaction.atomic():
                alert = Alert.objects.create(
                    deployment_name=deployment,
                    rule_name=rule["name"],
                    rule_kind=rule["kind"],
                    subject=rule.get("kpi") or rule.get("model") or "",
                    rules_version=version,
                    message=check.message,
                    observed=check.observed,
                    threshold=check.threshold,
                    opened_at=now,
                    last_seen_at=now,
                    recipients=rule["recipients"],
                )
        except IntegrityError:
            return RuleResult(**base, state="still_open", message=check.message)
        return RuleResult(**base, state="opened", message=check.message, alert_id=alert.pk)


def _clear_orphans(*, deployments: set[str] | None, in_force: set[tuple[str, str]], now: datetime):
    """Clear open alerts whose rule is no longer in an active alert_rules version."""
    cleared = []
    with transaction.atomic():
        alerts = Alert.objects.select_for_update().filter(status=AlertStatus.OPEN)
        if deployments is not None:
            alerts = alerts.filter(deployment_name__in=deployments)
        for alert in alerts:
            if (alert.deployment_name, alert.rule_name) in in_force:
                continue
            alert.status = AlertStatus.CLEARED
            alert.cleared_at = now
            alert.save(update_fields=["status", "cleared_at"])
            cleared.append(
                RuleResult(
                    alert.deployment_name,
                    alert.rule_name,
                    alert.rule_kind,
                    "cleared",
                    "the rule is no longer in force",
                    alert.pk,
                )
            )
    return cleared


# --- e-mail ---------------------------------------------------------------------------


def alert_email(alert: Alert) -> EmailMessage:
    condition = alert.message
    subject = f"[Arbiter] Alert on {alert.deployment_name}: {alert.rule_name}"
    body = (
        f"Alert rule {alert.rule_name} of deployment {alert.deployment_name} is breached.\n\n"
        f"{condition}\n\n"
        f"Opened: {alert.opened_at:%Y-%m-%d %H:%M} UTC\n"
        f"Rules: alert_rules {alert.deployment_name} v{alert.rules_version.number}\n\n"
        "You receive this once per breach: no further e-mail while the condition holds;\n"
        "a new one only after it has cleared and is breached again.\n"
        "The open alerts are listed on the Arbiter dashboard and under Monitoring > Alerts.\n"
    )
    return EmailMessage(
        subject, body, from_email=settings.DEFAULT_FROM_EMAIL, to=list(alert.recipients)
    )


def alert_notify(alert: Alert, *, now: datetime) -> bool | None:
    """E-mail an open, not yet notified alert's recipients; True sent, False failed, None
    when another evaluation claimed it first or there is nothing to send.

    The claim is a conditional update of ``notify_attempts``: of two evaluations reading the
    same count, one update matches and sends.
    """
    if not alert.recipients:
        return None
    claimed = Alert.objects.filter(
        pk=alert.pk,
        status=AlertStatus.OPEN,
        notified_at__isnull=True,
        notify_attempts=alert.notify_attempts,
    ).update(notify_attempts=F("notify_attempts") + 1)
    if not claimed:
        return None
    try:
        alert_email(alert).send(fail_silently=False)
    except Exception as exc:  # any transport error: recorded, retried next run
        logger.error("alert %s: e-mail failed: %s", alert.pk, exc)
        Alert.objects.filter(pk=alert.pk).update(notify_error=f"{type(exc).__name__}: {exc}")
        return False
    Alert.objects.filter(pk=alert.pk).update(notified_at=now, notify_error="")
    return True


def _pending_notifications(deployments: set[str] | None) -> QuerySet[Alert]:
    alerts = Alert.objects.select_related("rules_version").filter(
        status=AlertStatus.OPEN,
        notified_at__isnull=True,
        notify_attempts__lt=MAX_NOTIFY_ATTEMPTS,
    )
    if deployments is not None:
        alerts = alerts.filter(deployment_name__in=deployments)
    return alerts.order_by("pk")


# --- the service ----------------------------------------------------------------------


def alerts_evaluate(
    *,
    actor: AbstractBaseUser | None = None,
    deployment: str | None = None,
    now: datetime | None = None,
) -> Evaluation:
    """Evaluate the active alert rules (of one deployment, or all) and e-mail new breaches.

    ``actor`` None is the schedule; a person must be an admin. KPI reports are computed
    before any lock is taken; each rule's alert is then updated in its own short
    transaction (``alert_record``), and e-mails go out after those commit. Safe to run twice
    and concurrently. Raises ``PermissionDenied``, and ``NotFound`` for a deployment with no
    active alert rules.
    """
    if actor is not None:
        require_role(actor, EVALUATOR_ROLES, action="evaluate alert rules")
    now = now or timezone.now()
    versions = alert_rules_active()
    if deployment is not None:
        versions = versions.filter(item__name=deployment)
        if not versions.exists():
            raise NotFound(f"There are no active alert rules for {deployment!r}.")
    evaluation = Evaluation(evaluated_at=now)
    reports = KpiReports(now)
    in_force: set[tuple[str, str]] = set()
    for version in versions:
        for rule in version.content.get("rules", []):
            in_force.add((version.item.name, rule["name"]))
            try:
                check = rule_check(rule, deployment=version.item.name, reports=reports)
            except NotFound as exc:  # the deployment is gone: nothing to measure
                check = RuleCheck(None, exc.message)
            evaluation.results.append(
                alert_record(version=version, rule=rule, check=check, now=now)
            )
    evaluation.results += _clear_orphans(
        deployments={deployment} if deployment else None, in_force=in_force, now=now
    )
    for alert in _pending_notifications({deployment} if deployment else None):
        sent = alert_notify(alert, now=now)
        if sent is True:
            evaluation.notified += 1
        elif sent is False:
            evaluation.notify_failed += 1
    logger.info("alerts evaluated: %s", evaluation.summary())
    return evaluation


def alert_list(
    *, actor: AbstractBaseUser, status: str | None = None, deployment: str | None = None
) -> QuerySet[Alert]:
    """Alerts, newest first; readers of KPIs only."""
    require_role(actor, KPI_READER_ROLES, action="read alerts")
    alerts = Alert.objects.select_related("rules_version", "rules_version__item")
    if status:
        alerts = alerts.filter(status=status)
    if deployment:
        alerts = alerts.filter(deployment_name=deployment)
    return alerts


def alert_rules_active() -> QuerySet[Version]:
    """The active alert_rules version of every deployment that has one, by name."""
    return (
        Version.objects.select_related("item")
        .filter(item__kind=RULES_KIND, status=VersionStatus.ACTIVE)
        .order_by("item__name")
    )
