from django.urls import path

from decisions import apis

app_name = "decisions"

urlpatterns = [
    path("deployments/<str:name>/", apis.DeploymentDetailApi.as_view(), name="deployment-detail"),
    path("decisions/", apis.DecisionListApi.as_view(), name="decision-list"),
    path("decisions/<str:decision_id>/", apis.DecisionDetailApi.as_view(), name="decision-detail"),
    path(
        "decisions/<str:decision_id>/replay/",
        apis.DecisionReplayApi.as_view(),
        name="decision-replay",
    ),
]
