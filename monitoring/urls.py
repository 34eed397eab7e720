from django.urls import path

from monitoring import apis

app_name = "monitoring"

urlpatterns = [
    path("outcomes/", apis.OutcomeListApi.as_view(), name="outcome-list"),
    path("monitoring/kpis/", apis.KpiReportApi.as_view(), name="kpi-report"),
]
