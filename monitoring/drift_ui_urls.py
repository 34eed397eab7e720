"""URLs of the drift pages; ``arbiter.urls`` mounts them under the ``ui`` namespace."""

from django.urls import path

from monitoring import drift_views

urlpatterns = [
    path("drift/", drift_views.drift_list, name="drift-list"),
    path("drift/<int:report_id>/", drift_views.drift_detail, name="drift-detail"),
    path("drift/<int:report_id>/evidently/", drift_views.drift_evidently, name="drift-evidently"),
]
