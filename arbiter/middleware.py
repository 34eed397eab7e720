"""Two middlewares of the pages: a sign-in's idle clock, and the database-down page.

A database that cannot be reached answers 503 with a page that says so, not a 500.

The API maps these errors itself (``arbiter.api_errors``: DRF handles its views'
exceptions before any middleware sees them); this covers the pages: the reviewer UI, the
admin and the login page. The page is rendered without the request's
context (no user, no messages), because loading either would ask the database again.
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.middleware.common import CommonMiddleware as DjangoCommonMiddleware
from django.template import loader
from django.urls import get_resolver

from arbiter.api_errors import DATABASE_ERRORS, DATABASE_UNAVAILABLE, error_body, logger


class DatabaseUnavailableMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not isinstance(exception, DATABASE_ERRORS):
            return None
        logger.error(
            "database unavailable while serving %s %s: %s", request.method, request.path, exception
        )
        page = loader.get_template("503.html").render({"message": DATABASE_UNAVAILABLE})
        return HttpResponse(page, status=503)


class SessionIdleClockMiddleware:
    """Each request answered below 500 restarts a signed-in session's idle clock
    (``SESSION_COOKIE_AGE``, from ``SESSION_IDLE_MINUTES``).

    Django's ``SESSION_SAVE_EVERY_REQUEST`` does the same but reads the session for its
    cookie before it looks at the status, so a page answering 503 because the database
    is down would fail again on the way out. A request without a session cookie (an API
    key's) is left alone. Listed after ``SessionMiddleware``, so it runs before that
    saves.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        session = getattr(request, "session", None)
        if response.status_code < 500 and session is not None and session.session_key:
            session.modified = True
        return response


class CommonMiddleware(DjangoCommonMiddleware):
    """Django's, without APPEND_SLASH under ``/api/``: a redirect there would turn a POST
    into the GET a client's library sends after a 301 (a list, no decision, no error), and
    under DEBUG Django raises instead. A path without its slash is a JSON 404 that names
    the path with it (``arbiter.api_errors.api_aware``). And a Content-Length that is not
    a number is a 400 there, not an empty body."""

    def process_request(self, request: HttpRequest) -> HttpResponse | None:
        if request.path_info.startswith("/api/"):
            length = request.META.get("CONTENT_LENGTH") or ""
            if length and not (length.isascii() and length.strip().isdigit()):
                # Django reads it as 0, an empty body: the client's mistake would come
                # back as "this field is required".
                body = error_body(
                    "invalid",
                    "The Content-Length header is not a number of bytes.",
                    {"Content-Length": ["must be a whole number of bytes"]},
                )
                return JsonResponse(body, status=400)
        return super().process_request(request)

    def should_redirect_with_slash(self, request: HttpRequest) -> bool:
        if request.path_info.startswith("/api/"):
            return False
        return super().should_redirect_with_slash(request)

    def process_response(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        response = super().process_response(request, response)
        if (
            settings.DEBUG
            and response.status_code == 404
            and request.path_info.startswith("/api/")
            and not response.get("Content-Type", "").startswith("application/json")
        ):
            # Under DEBUG (the demo) Django answers a URL no route matches with its HTML
            # page, not ``handler404``: a client written against the demo would meet a
            # body it cannot parse where production answers in JSON.
            return get_resolver().resolve_error_handler(404)(request, exception=None)
        return response
