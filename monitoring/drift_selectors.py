"""Reads of drift reports, for the reviewer pages, the REST API and the dashboard.

Readers: makers, checkers, auditors and admins (the people who read KPIs). Downstream
systems (API clients) do not: a drift report describes every client's traffic.
"""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import QuerySet

from governance.exceptions import NotFound
from governance.models import Version
from governance.roles import Role, require_role
from monitoring.drift import drift_model_versions
from monitoring.models import DriftReport

DRIFT_READER_ROLES = frozenset({Role.MAKER, Role.CHECKER, Role.AUDITOR, Role.ADMIN})


def drift_report_list(
    *,
    actor: AbstractBaseUser | AnonymousUser,
    model: str | None = None,
    version: int | None = None,
    status: str | None = None,
) -> QuerySet[DriftReport]:
    """Drift reports, newest window first, optionally of one model (and version) or status."""
    require_role(actor, DRIFT_READER_ROLES, action="read drift reports")
    reports = DriftReport.objects.select_related("model_version__item")
    if model:
        reports = reports.filter(model_version__item__name=model)
    if version is not None:
        reports = reports.filter(model_version__number=version)
    if status:
        reports = reports.filter(status=status)
    return reports.order_by("-window_end", "model_version__item__name", "-pk")


def drift_report_get(*, actor: AbstractBaseUser | AnonymousUser, report_id: int) -> DriftReport:
    require_role(actor, DRIFT_READER_ROLES, action="read drift reports")
    report = DriftReport.objects.select_related("model_version__item").filter(pk=report_id).first()
    if report is None:
        raise NotFound(f"There is no drift report {report_id}.", code="drift_report_not_found")
    return report


def drift_latest_per_model(
    *, actor: AbstractBaseUser | AnonymousUser
) -> list[tuple[Version, DriftReport | None]]:
    """Each watched model version (``drift_model_versions``) with its latest report."""
    require_role(actor, DRIFT_READER_ROLES, action="read drift reports")
    out = []
    for version in drift_model_versions():
        latest = (
            DriftReport.objects.filter(model_version=version).order_by("-window_end", "-pk").first()
        )
        out.append((version, latest))
    return out


def drift_report_latest(*, model: str) -> DriftReport | None:
    """The latest report (by window end) of any version of ``model``; for alert rules,
    which run without an actor."""
    return (
        DriftReport.objects.select_related("model_version__item")
        .filter(model_version__item__name=model)
        .order_by("-window_end", "-pk")
        .first()
    )
