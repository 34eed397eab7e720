"""URLs of the monitoring pages; ``arbiter.urls`` mounts them under the ``ui`` namespace."""

from django.urls import path

import arbiter.converters  # noqa: F401 (registers <name:...>, a registry item name)
from monitoring import kpi_views, status_views

urlpatterns = [
    path("monitoring/", kpi_views.monitoring_index, name="monitoring"),
    path(
        "monitoring/deployments/<name:name>/",
        kpi_views.monitoring_deployment,
        name="monitoring-deployment",
    ),
    path("monitoring/alerts/", kpi_views.alert_list, name="alert-list"),
    path("status/", status_views.status_page, name="status"),
    path("monitoring/alerts/evaluate/", kpi_views.alert_evaluate, name="alert-evaluate"),
    path("monitoring/reports/", kpi_views.report_list, name="report-list"),
    path("monitoring/reports/send/", kpi_views.report_send, name="report-send"),
    path("monitoring/reports/<int:report_id>/", kpi_views.report_detail, name="report-detail"),
    path("monitoring/reports/<int:report_id>/email/", kpi_views.report_email, name="report-email"),
]
