"""URLs of the decision lookup pages; ``arbiter.urls`` mounts them under the ``ui`` namespace."""

from django.urls import path

from decisions import run_views, views

urlpatterns = [
    path("decisions/", views.decision_search, name="decision-search"),
    path("decisions/verify/", views.decision_log_verify, name="decision-log-verify"),
    path(
        "decisions/replays/", views.decision_replay_check_start, name="decision-replay-check-start"
    ),
    path(
        "decisions/replays/<int:check_id>/",
        views.decision_replay_check,
        name="decision-replay-check",
    ),
    path("decisions/<uuid:decision_id>/", views.decision_detail, name="decision-detail"),
    path("decisions/<uuid:decision_id>/replay/", views.decision_replay, name="decision-replay"),
    path("optimisation/", run_views.run_list, name="run-list"),
    path("optimisation/start/", run_views.run_start, name="run-start"),
    path("optimisation/<int:run_id>/", run_views.run_detail, name="run-detail"),
    path("optimisation/<int:run_id>/cancel/", run_views.run_cancel, name="run-cancel"),
    path("optimisation/<int:run_id>/publish/", run_views.run_publish, name="run-publish"),
    path("impact/<int:version_id>/", run_views.impact_start, name="impact-start"),
]
