"""Reviewer pages of monitoring: KPIs per deployment with charts, alerts, executive reports.

Readers are the people who read KPIs (makers, checkers, auditors, admins). Every chart is a
server-rendered PNG (``monitoring.charts``) with a one-sentence text alternative and, in a
disclosure below it, the table of its figures. Evaluating the alert rules and sending the
report now are admin buttons calling the same services as beat and the commands, which
check the role again.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.clickjacking import xframe_options_sameorigin
from django.views.decorators.http import require_GET, require_POST

from decisions.selectors import deployment_active_list
from governance.exceptions import DomainError, NotFound
from governance.lifecycle import AUTHOR_ROLES
from governance.models import Item, VersionStatus
from governance.presentation import VersionRef
from governance.roles import has_role
from governance.ui_access import ui_page
from monitoring import alerts, reports
from monitoring.alert_rules import KIND as RULES_KIND
from monitoring.kpis import KPIS
from monitoring.models import Alert, AlertStatus, ReportTrigger
from monitoring.report_recipients import DEFAULT_REPORT
from monitoring.report_recipients import KIND as RECIPIENTS_KIND
from monitoring.selectors import KPI_READER_ROLES, kpi_headline

WINDOWS = (7, 28, 90)
DEFAULT_DAYS = 28
FAMILIES = (("financial", "Financial"), ("operational", "Operational"), ("customer", "Customer"))
ALERT_LIST_LIMIT = 200
REPORT_LIST_LIMIT = 100


def _days(request: HttpRequest) -> int:
    try:
        days = int(request.GET.get("days", DEFAULT_DAYS))
    except ValueError:
        return DEFAULT_DAYS
    return days if days in WINDOWS else DEFAULT_DAYS


@require_GET
@ui_page(roles=KPI_READER_ROLES, action="read KPIs")
def monitoring_index(request: HttpRequest) -> HttpResponse:
    days = _days(request)
    now = timezone.now()
    open_by_deployment: dict[str, int] = {}
    for name in Alert.objects.filter(status=AlertStatus.OPEN).values_list(
        "deployment_name", flat=True
    ):
        open_by_deployment[name] = open_by_deployment.get(name, 0) + 1
    rows = []
    for version in deployment_active_list():
        name = version.item.name
        report = kpi_headline(
            actor=request.user, deployment=name, since=now - timedelta(days=days), until=now
        )
        rows.append(
            {
                "name": name,
                "ref": VersionRef("deployment", name, version.number),
                "decisions": report["decisions"],
                "outcomes": report["outcomes"],
                "met": sum(1 for k in report["kpis"] if k["met"] is True),
                "missed": [k["label"] for k in report["kpis"] if k["met"] is False],
                "targets": report["targets_version"],
                "open_alerts": open_by_deployment.get(name, 0),
            }
        )
    return render(
        request,
        "monitoring/kpi_index.html",
        {"deployments": rows, "days": days, "windows": WINDOWS},
    )


@require_GET
@ui_page(roles=KPI_READER_ROLES, action="read KPIs")
def monitoring_deployment(request: HttpRequest, name: str) -> HttpResponse:
    days = _days(request)
    now = timezone.now()
    overview = reports.deployment_overview(
        actor=request.user,
        deployment=name,
        since=now - timedelta(days=days),
        until=now,
        all_kpis=True,
    )
    families = [
        {
            "key": key,
            "label": label,
            "rows": [row for row in overview["kpis"] if row["family"] == key],
        }
        for key, label in FAMILIES
    ]
    return render(
        request,
        "monitoring/kpi_detail.html",
        {
            "d": overview,
            "families": families,
            "days": days,
            "windows": WINDOWS,
            "descriptions": {key: kpi.description for key, kpi in KPIS.items()},
            "methods": overview["report"]["methods"],
            "has_rules": Item.objects.filter(kind=RULES_KIND, name=name).exists(),
        },
    )


@require_GET
@ui_page(roles=KPI_READER_ROLES, action="read alerts")
def alert_list(request: HttpRequest) -> HttpResponse:
    open_alerts = list(alerts.alert_list(actor=request.user, status=AlertStatus.OPEN))
    cleared = list(
        alerts.alert_list(actor=request.user, status=AlertStatus.CLEARED)[:ALERT_LIST_LIMIT]
    )
    return render(
        request,
        "monitoring/alert_list.html",
        {
            "open_alerts": open_alerts,
            "cleared": cleared,
            "limit": ALERT_LIST_LIMIT,
            "can_evaluate": has_role(request.user, *alerts.EVALUATOR_ROLES),
            "can_draft": has_role(request.user, *AUTHOR_ROLES),
            "rule_sets": [
                {
                    "ref": VersionRef(RULES_KIND, v.item.name, v.number),
                    "rules": len(v.content["rules"]),
                }
                for v in alerts.alert_rules_active()
            ],
        },
    )


@require_POST
@ui_page(roles=alerts.EVALUATOR_ROLES, action="evaluate alert rules")
def alert_evaluate(request: HttpRequest) -> HttpResponse:
    try:
        evaluation = alerts.alerts_evaluate(actor=request.user)
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, "Evaluated: " + evaluation.summary())
        # Why a rule was not evaluated (no KPI target, no drift report yet, too few
        # decisions): otherwise the count is all a reader learns.
        for result in evaluation.results:
            if result.state == "not_evaluated":
                messages.warning(
                    request, f"Rule {result.rule} ({result.deployment}): {result.message}"
                )
    return redirect("ui:alert-list")


@require_GET
@ui_page(roles=KPI_READER_ROLES, action="read executive reports")
def report_list(request: HttpRequest) -> HttpResponse:
    can_send = has_role(request.user, *reports.SENDER_ROLES)
    names = list(
        Item.objects.filter(kind=RECIPIENTS_KIND, versions__status=VersionStatus.ACTIVE)
        .order_by("name")
        .values_list("name", flat=True)
    )
    return render(
        request,
        "monitoring/report_list.html",
        {
            "reports": list(reports.report_list(actor=request.user)[:REPORT_LIST_LIMIT]),
            "limit": REPORT_LIST_LIMIT,
            "can_send": can_send,
            "report_names": names,
            "default_report": DEFAULT_REPORT,
        },
    )


@require_POST
@ui_page(roles=reports.SENDER_ROLES, action="send the executive report")
def report_send(request: HttpRequest) -> HttpResponse:
    name = request.POST.get("report", "").strip() or DEFAULT_REPORT
    if request.POST.get("confirm") != "yes":
        # Browsers ask first; a form sent without the tick (or by hand) sends nothing.
        messages.error(
            request, "Nothing was sent: tick the box to e-mail the report to its recipients."
        )
        return redirect("ui:report-list")
    try:
        archived = reports.report_send(
            actor=request.user, report=name, trigger=ReportTrigger.MANUAL
        )
    except DomainError as exc:
        messages.error(request, exc.message)
        return redirect("ui:report-list")
    assert archived is not None  # only scheduled sends are ever skipped
    if archived.status == "sent":
        messages.success(
            request, f"Report sent to {len(archived.recipients)} recipients and archived."
        )
    else:
        messages.error(request, f"The report could not be sent ({archived.error}); archived.")
    return redirect("ui:report-detail", report_id=archived.pk)


@require_GET
@ui_page(roles=KPI_READER_ROLES, action="read executive reports")
def report_detail(request: HttpRequest, report_id: int) -> HttpResponse:
    report = reports.report_get(actor=request.user, report_id=report_id)
    return render(
        request,
        "monitoring/report_detail.html",
        {
            "report": report,
            "recipients_ref": VersionRef(
                RECIPIENTS_KIND,
                report.recipients_version.item.name,
                report.recipients_version.number,
            ),
        },
    )


@require_GET
@xframe_options_sameorigin
@ui_page(roles=KPI_READER_ROLES, action="read executive reports")
def report_email(request: HttpRequest, report_id: int) -> HttpResponse:
    """The archived HTML part as the recipients saw it, images inlined as data URIs.

    Served with a policy that allows no scripts, no fetches and no forms: the page is
    framed by the report's page and may only show its own styles and images.
    """
    report = reports.report_get(actor=request.user, report_id=report_id)
    response = HttpResponse(reports.report_html_for_browser(report), content_type="text/html")
    response["Content-Security-Policy"] = (
        "default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
        "frame-ancestors 'self'; form-action 'none'; base-uri 'none'"
    )
    return response


def dashboard_alerts_context(request: HttpRequest) -> dict[str, Any]:
    try:
        open_alerts = list(alerts.alert_list(actor=request.user, status=AlertStatus.OPEN)[:10])
    except (DomainError, NotFound):
        open_alerts = []
    return {"alerts": open_alerts}
