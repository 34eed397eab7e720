from django.urls import path

import arbiter.converters  # noqa: F401 (registers <name:...>, a registry item name)
from decisions import apis, optimisation_apis

app_name = "decisions"

urlpatterns = [
    path("deployments/<name:name>/", apis.DeploymentDetailApi.as_view(), name="deployment-detail"),
    path("decisions/", apis.DecisionListApi.as_view(), name="decision-list"),
    path(
        "decision-log/verifications/",
        apis.LogVerificationListApi.as_view(),
        name="decision-log-verifications",
    ),
    path("decision-log/replays/", apis.ReplayCheckListApi.as_view(), name="decision-log-replays"),
    path(
        "decision-log/replays/<int:check_id>/",
        apis.ReplayCheckDetailApi.as_view(),
        name="decision-log-replay",
    ),
    path("decisions/<str:decision_id>/", apis.DecisionDetailApi.as_view(), name="decision-detail"),
    path(
        "decisions/<str:decision_id>/replay/",
        apis.DecisionReplayApi.as_view(),
        name="decision-replay",
    ),
    path("optimisation-runs/", optimisation_apis.RunListApi.as_view(), name="run-list"),
    path(
        "optimisation-runs/<int:run_id>/",
        optimisation_apis.RunDetailApi.as_view(),
        name="run-detail",
    ),
    path(
        "optimisation-runs/<int:run_id>/cancel/",
        optimisation_apis.RunCancelApi.as_view(),
        name="run-cancel",
    ),
    path(
        "optimisation-runs/<int:run_id>/decisions/",
        optimisation_apis.RunDecisionsApi.as_view(),
        name="run-decisions",
    ),
    path(
        "optimisation-runs/<int:run_id>/publish-prices/",
        optimisation_apis.RunPublishApi.as_view(),
        name="run-publish-prices",
    ),
]
