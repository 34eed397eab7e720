from django.urls import path

import arbiter.converters  # noqa: F401 (registers <name:...>, a registry item name)
from governance import apis

app_name = "governance"

urlpatterns = [
    path("registry/<slug:kind>/", apis.ItemListApi.as_view(), name="item-list"),
    path(
        "registry/<slug:kind>/<name:name>/versions/",
        apis.VersionListApi.as_view(),
        name="version-list",
    ),
    path(
        "registry/<slug:kind>/<name:name>/versions/<int:number>/",
        apis.VersionDetailApi.as_view(),
        name="version-detail",
    ),
    path(
        "registry/<slug:kind>/<name:name>/versions/<int:number>/<slug:move>/",
        apis.VersionMoveApi.as_view(),
        name="version-move",
    ),
    path("audit/events/", apis.AuditEventListApi.as_view(), name="audit-events"),
    path("audit/verify/", apis.AuditVerifyApi.as_view(), name="audit-verify"),
]
