"""What the decisions app adds to governance's reviewer pages: the decision lookup link and
the dashboard's panel of active deployments (see ``governance.ui_extensions``)."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from decisions.review_together import together_panel_context
from decisions.run_views import (
    RUN_PAGE_ROLES,
    impact_panel_context,
    latest_runs_context,
    price_source_panel_context,
)
from decisions.selectors import deployment_active_list
from decisions.views import DECISION_PAGE_ROLES
from governance.presentation import VersionRef
from governance.ui_access import UI_ROLES
from governance.ui_extensions import (
    DashboardPanel,
    NavLink,
    VersionPanel,
    register_dashboard_panel,
    register_nav_link,
    register_version_panel,
)


def active_deployments_context(request: HttpRequest) -> dict[str, Any]:
    rows = []
    for version in deployment_active_list():
        content = version.content
        rows.append(
            {
                "version": version,
                "ref": VersionRef("deployment", version.item.name, version.number),
                "strategy": VersionRef.parse("strategy", content.get("strategy")),
                "constraint_set": VersionRef.parse("constraint_set", content.get("constraint_set")),
                "challengers": len(content.get("challengers", [])),
            }
        )
    return {"deployments": rows}


def register_ui_extensions() -> None:
    register_nav_link(
        NavLink("Decisions", "ui:decision-search", roles=DECISION_PAGE_ROLES, order=90)
    )
    register_nav_link(NavLink("Optimisation", "ui:run-list", roles=RUN_PAGE_ROLES, order=80))
    register_version_panel(
        VersionPanel(
            key="together",
            title="Also under review",
            template="decisions/version_together.html",
            context=together_panel_context,
            roles=RUN_PAGE_ROLES,
            order=5,
        )
    )
    register_version_panel(
        VersionPanel(
            key="impact",
            title="Simulated impact",
            template="decisions/version_impact.html",
            context=impact_panel_context,
            roles=RUN_PAGE_ROLES,
            order=10,
        )
    )
    register_version_panel(
        VersionPanel(
            key="price-source",
            title="Where these prices come from",
            template="decisions/version_price_source.html",
            context=price_source_panel_context,
            roles=RUN_PAGE_ROLES,
            order=8,
        )
    )
    register_dashboard_panel(
        DashboardPanel(
            key="optimisation-runs",
            title="Latest optimisation runs",
            template="decisions/dashboard_runs.html",
            context=latest_runs_context,
            roles=RUN_PAGE_ROLES,
            order=60,
        )
    )
    register_dashboard_panel(
        DashboardPanel(
            key="active-deployments",
            title="Active deployments",
            template="decisions/dashboard_deployments.html",
            context=active_deployments_context,
            roles=UI_ROLES,
            order=50,
        )
    )
