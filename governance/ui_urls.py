"""URLs of governance's reviewer pages; ``arbiter.urls`` mounts them under the ``ui`` namespace."""

from django.urls import path

import arbiter.converters  # noqa: F401 (registers <name:...>, a registry item name)
from governance import views

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("reviews/", views.review_queue, name="review-queue"),
    path("registry/", views.registry_index, name="registry-index"),
    path("registry/<slug:slug>/", views.registry_browse, name="registry"),
    path("registry/<slug:slug>/new/", views.item_create, name="item-create"),
    path("registry/<slug:slug>/<name:name>/new/", views.draft_create, name="draft-create"),
    path(
        "registry/<slug:slug>/<name:name>/v<int:number>/",
        views.version_detail,
        name="version-detail",
    ),
    path(
        "registry/<slug:slug>/<name:name>/v<int:number>/edit/",
        views.draft_edit,
        name="draft-edit",
    ),
    path(
        "registry/<slug:slug>/<name:name>/v<int:number>/move/",
        views.version_move,
        name="version-move",
    ),
    path("audit/", views.audit_trail, name="audit-trail"),
    path("account/password/", views.password_change, name="password-change"),
]
