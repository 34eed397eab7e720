"""What drift adds to governance's reviewer pages: a navigation link to the drift reports
and a dashboard panel of each watched model version's latest drift status (see
``governance.ui_extensions``)."""

from __future__ import annotations

from governance.ui_extensions import (
    DashboardPanel,
    NavLink,
    register_dashboard_panel,
    register_nav_link,
)
from monitoring.drift_selectors import DRIFT_READER_ROLES
from monitoring.drift_views import latest_drift_context


def register_drift_ui_extensions() -> None:
    register_nav_link(NavLink("Drift", "ui:drift-list", roles=DRIFT_READER_ROLES, order=86))
    register_dashboard_panel(
        DashboardPanel(
            key="model-drift",
            title="Model drift",
            template="monitoring/dashboard_drift.html",
            context=latest_drift_context,
            roles=DRIFT_READER_ROLES,
            order=70,
        )
    )
