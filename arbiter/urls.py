from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.templatetags.static import static
from django.urls import include, path
from django.views import defaults
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response

from arbiter.api_errors import api_aware, bad_request
from arbiter.metrics import metrics_view
from decisions import ui_urls as decisions_ui_urls
from governance import ui_urls as governance_ui_urls
from monitoring import drift_ui_urls as monitoring_drift_ui_urls
from monitoring import ui_urls as monitoring_ui_urls


class FaviconView(RedirectView):
    permanent = False  # the target is a hashed name that changes with the icon

    def get_redirect_url(self, *args: object, **kwargs: object) -> str:
        return static("favicon.svg")  # resolved per request: the manifest's hashed name


class SchemaView(SpectacularAPIView):
    """The OpenAPI document (YAML, or JSON with ``?format=json``); a refusal (401, 403) is
    the API's JSON error body, as everywhere else, not the error written as YAML."""

    def handle_exception(self, exc: Exception) -> Response:
        response = super().handle_exception(exc)
        self.request.accepted_renderer = JSONRenderer()
        self.request.accepted_media_type = JSONRenderer.media_type
        return response


# The reviewer pages of the apps share one namespace, ``ui``, mounted at the site root.
ui_patterns = (
    governance_ui_urls.urlpatterns
    + decisions_ui_urls.urlpatterns
    + monitoring_ui_urls.urlpatterns
    + monitoring_drift_ui_urls.urlpatterns,
    "ui",
)

urlpatterns = [
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    # The admin's own password form would change a password with no audit event or notice:
    # its link leads to the page that does both.
    path(
        "admin/password_change/",
        RedirectView.as_view(pattern_name="ui:password-change", permanent=False),
    ),
    path("admin/", admin.site.urls),
    path("api/v1/", include("governance.urls")),
    path("api/v1/", include("decisions.urls")),
    path("api/v1/", include("monitoring.urls")),
    path("api/schema/", SchemaView.as_view(), name="schema"),
    # Swagger UI's set-up script comes from its own URL (?script), not inline: the CSP
    # allows no inline script.
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="schema"), name="api-docs"),
    path("metrics", metrics_view, name="metrics"),
    # Browsers ask for it on every page that names none (the admin, Swagger UI).
    path("favicon.ico", FaviconView.as_view(), name="favicon"),
    path("", include(ui_patterns)),
]

# The API answers in its error body even for a URL it does not have, a request Django
# refuses before any view (too large, too many fields), or a bug.
handler400 = bad_request
handler404 = api_aware(
    defaults.page_not_found, "not_found", "There is no API endpoint at {path}.", 404
)
handler500 = api_aware(
    defaults.server_error,
    "server_error",
    "The server failed on this request; it has been logged. Try again, or tell Arbiter's "
    "administrators if it persists.",
    500,
)
