from django.urls import path

from monitoring import apis, drift_apis

app_name = "monitoring"

urlpatterns = [
    path("outcomes/", apis.OutcomeListApi.as_view(), name="outcome-list"),
    path("monitoring/kpis/", apis.KpiReportApi.as_view(), name="kpi-report"),
    path("monitoring/status/", apis.StatusApi.as_view(), name="status"),
    path("monitoring/drift/", drift_apis.DriftReportListApi.as_view(), name="drift-list"),
    path(
        "monitoring/drift/<int:report_id>/",
        drift_apis.DriftReportDetailApi.as_view(),
        name="drift-detail",
    ),
]
