"""The status page: ``manage.py status`` for administrators in the browser."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from governance.roles import Role
from governance.ui_access import ui_page
from monitoring.status import FAILING, status_report

STATUS_ROLES = frozenset({Role.ADMIN})


@require_GET
@ui_page(roles=STATUS_ROLES, action="read the installation's status")
def status_page(request: HttpRequest) -> HttpResponse:
    report = status_report(actor=request.user)
    return render(
        request,
        "monitoring/status.html",
        {"report": report, "checked": timezone.now()},
        status=503 if report["state"] == FAILING else 200,
    )
