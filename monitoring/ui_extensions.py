"""What monitoring adds to the reviewer pages: the Monitoring link and the dashboard's
panel of open alerts (see ``governance.ui_extensions``)."""

from __future__ import annotations

from governance.ui_extensions import (
    DashboardPanel,
    NavLink,
    register_dashboard_panel,
    register_nav_link,
)
from monitoring.kpi_views import dashboard_alerts_context
from monitoring.selectors import KPI_READER_ROLES
from monitoring.status_views import STATUS_ROLES


def register_ui_extensions() -> None:
    register_nav_link(NavLink("Monitoring", "ui:monitoring", roles=KPI_READER_ROLES, order=85))
    register_nav_link(NavLink("Status", "ui:status", roles=STATUS_ROLES, order=99))
    register_dashboard_panel(
        DashboardPanel(
            key="monitoring-alerts",
            title="Open alerts",
            template="monitoring/alert_dashboard.html",
            context=dashboard_alerts_context,
            roles=KPI_READER_ROLES,
            order=40,
        )
    )
