"""Reviewer pages of drift: the reports per model version, one report's feature table, and
Evidently's HTML report.

Evidently's HTML is a page of its own scripts, never rendered into ours: ``drift_evidently``
serves the stored file (checked against its SHA-256) with a Content-Security-Policy that
sandboxes it (a unique origin: it cannot read our cookies or pages), lets only its own
inline scripts and styles run and forbids every network request; the report page embeds
it in an ``<iframe sandbox="allow-scripts">``. Reads go through ``drift_selectors``, the
selectors the REST API calls, so roles are checked there as well as here.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.clickjacking import xframe_options_sameorigin
from django.views.decorators.http import require_GET

from governance.exceptions import NotFound
from governance.presentation import VersionRef
from governance.ui_access import ui_page
from monitoring import drift_selectors
from monitoring.drift import drift_report_html
from monitoring.drift_selectors import DRIFT_READER_ROLES
from monitoring.models import DriftReport, DriftStatus

LIST_LIMIT = 100
#: Evidently's report is one HTML file with inline scripts, styles and data-URI images.
EVIDENTLY_CSP = "; ".join(
    [
        "sandbox allow-scripts",
        "default-src 'none'",
        "script-src 'unsafe-inline'",
        "style-src 'unsafe-inline'",
        "img-src data: blob:",
        "font-src data:",
        "connect-src 'none'",
        "form-action 'none'",
        "base-uri 'none'",
        "frame-ancestors 'self'",
    ]
)
#: The status badge's look, borrowed from the version states (base.html).
STATUS_CSS = {
    DriftStatus.STABLE: "approved",
    DriftStatus.WATCH: "submitted",
    DriftStatus.ACT: "rejected",
    DriftStatus.NO_DATA: "draft",
}
BAND_WORDS = {"stable": "Stable", "watch": "Watch", "act": "Act", "no_data": "No data"}


def _row(report: DriftReport) -> dict[str, Any]:
    version = report.model_version
    return {
        "report": report,
        "model": VersionRef("model", version.item.name, version.number),
        "status_label": DriftStatus(report.status).label,
        "status_css": STATUS_CSS.get(report.status, "draft"),
        "status_word": BAND_WORDS.get(report.status, report.status),
        "share_percent": None
        if report.share_drifted is None
        else round(100 * report.share_drifted, 1),
    }


@require_GET
@ui_page(roles=DRIFT_READER_ROLES, action="read drift reports")
def drift_list(request: HttpRequest) -> HttpResponse:
    model = request.GET.get("model", "").strip() or None
    reports = drift_selectors.drift_report_list(actor=request.user, model=model)
    latest = [
        {"model": VersionRef("model", v.item.name, v.number), "row": _row(r) if r else None}
        for v, r in drift_selectors.drift_latest_per_model(actor=request.user)
    ]
    return render(
        request,
        "monitoring/drift_list.html",
        {
            "rows": [_row(r) for r in reports[:LIST_LIMIT]],
            "limit": LIST_LIMIT,
            "model": model,
            "latest": latest,
        },
    )


@require_GET
@ui_page(roles=DRIFT_READER_ROLES, action="read drift reports")
def drift_detail(request: HttpRequest, report_id: int) -> HttpResponse:
    report = drift_selectors.drift_report_get(actor=request.user, report_id=report_id)
    features = [
        {
            **f,
            "band_css": STATUS_CSS.get(f.get("psi_band"), "draft"),
            "band_word": BAND_WORDS.get(f.get("psi_band"), "—"),
        }
        for f in report.features
    ]
    row = _row(report)
    band = report.score.get("psi_band")
    return render(
        request,
        "monitoring/drift_detail.html",
        {
            **row,
            "row": row,
            "features": features,
            "customer_features": sum(1 for f in features if f.get("set_by") != "strategy"),
            "strategy_features": [f["name"] for f in features if f.get("set_by") == "strategy"],
            "score": report.score,
            "score_css": STATUS_CSS.get(band, "draft"),
            "score_word": BAND_WORDS.get(band, "—"),
            "html_ok": drift_report_html(report) is not None,
        },
    )


@require_GET
@xframe_options_sameorigin
@ui_page(roles=DRIFT_READER_ROLES, action="read drift reports")
def drift_evidently(request: HttpRequest, report_id: int) -> HttpResponse:
    report = drift_selectors.drift_report_get(actor=request.user, report_id=report_id)
    content = drift_report_html(report)
    if content is None:
        raise NotFound(
            f"Drift report {report_id} has no Evidently report on file"
            + (" (its file is missing or changed)." if report.html_path else "."),
            code="drift_html_missing",
        )
    response = HttpResponse(content, content_type="text/html; charset=utf-8")
    response["Content-Security-Policy"] = EVIDENTLY_CSP
    response["X-Content-Type-Options"] = "nosniff"
    response["Referrer-Policy"] = "no-referrer"
    response["Cache-Control"] = "private, no-store"
    return response


def latest_drift_context(request: HttpRequest) -> dict[str, Any]:
    """The dashboard panel: each watched model version's latest drift status."""
    return {
        "latest": [
            {"model": VersionRef("model", v.item.name, v.number), "row": _row(r) if r else None}
            for v, r in drift_selectors.drift_latest_per_model(actor=request.user)
        ]
    }
