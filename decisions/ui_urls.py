"""URLs of the decision lookup pages; ``arbiter.urls`` mounts them under the ``ui`` namespace."""

from django.urls import path

from decisions import views

urlpatterns = [
    path("decisions/", views.decision_search, name="decision-search"),
    path("decisions/<uuid:decision_id>/", views.decision_detail, name="decision-detail"),
    path("decisions/<uuid:decision_id>/replay/", views.decision_replay, name="decision-replay"),
]
