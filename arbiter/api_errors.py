"""One error body for the whole API: ``{"error": {"code", "message", "details"}}``.

Domain errors (``governance.exceptions.DomainError`` and subclasses) carry their own
code and status; DRF's own exceptions are mapped here so that clients see a single
shape whatever went wrong. A database that cannot be reached or fails a statement
(``OperationalError``, ``InterfaceError``: the server down or restarting, the connection
lost, a timeout) is 503 ``database_unavailable``, something a client can retry, not a
500. Other unexpected exceptions are left to Django (500 + logging).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.db import InterfaceError, OperationalError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.urls import Resolver404, resolve
from django.views import defaults
from rest_framework import exceptions as drf
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler
from rest_framework.views import set_rollback

from arbiter.metrics import API_ERRORS
from governance.exceptions import DomainError

logger = logging.getLogger("arbiter.database")

DATABASE_ERRORS = (OperationalError, InterfaceError)
DATABASE_UNAVAILABLE = (
    "The database could not be reached or did not complete the request. Try again shortly."
)


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details or {}}}


def _first_message(details: Any) -> str:
    if isinstance(details, dict):
        for key, value in details.items():
            inner = _first_message(value)
            return inner if key in ("non_field_errors", "detail") else f"{key}: {inner}"
    if isinstance(details, list) and details:
        return _first_message(details[0])
    return str(details)


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    response = _error_response(exc, context)
    if response is not None and isinstance(response.data, dict) and "error" in response.data:
        API_ERRORS.labels(str(response.status_code), response.data["error"]["code"]).inc()
    return response


def _error_response(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, DATABASE_ERRORS):
        request = context.get("request")
        where = f"{request.method} {request.path}" if request is not None else "the API"
        logger.error("database unavailable while serving %s: %s", where, exc)
        set_rollback()
        return Response(error_body("database_unavailable", DATABASE_UNAVAILABLE), status=503)
    if isinstance(exc, DomainError):
        details = exc.details if exc.request_details is None else exc.request_details
        return Response(error_body(exc.code, exc.message, details), status=exc.status)
    if isinstance(exc, Http404):
        exc = drf.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = drf.PermissionDenied()

    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, drf.ValidationError):
        details = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
        response.data = error_body("invalid", _first_message(details), details)
    elif isinstance(exc, drf.APIException):
        code = exc.get_codes()
        code = code if isinstance(code, str) else exc.default_code
        response.data = error_body(code, str(exc.detail))
    return response


def _has_slashed(request: HttpRequest) -> bool:
    """Whether the path, with a slash added, is an endpoint."""
    path = request.path_info
    if path.endswith("/"):
        return False
    try:
        resolve(f"{path}/", getattr(request, "urlconf", None))
    except Resolver404:
        return False
    return True


def api_aware(
    default: Callable[..., HttpResponse], code: str, message: str, status: int
) -> Callable[..., HttpResponse]:
    """``handler404``/``handler500``: the common error body under ``/api/``, else
    Django's page. DRF answers its own views' errors; these are what it never sees: a
    URL no route matches, and an exception no handler caught."""

    def handler(request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
        if request.path.startswith("/api/"):
            text = message.format(path=request.path)
            if status == 404 and _has_slashed(request):
                text += f" The endpoint is {request.path}/ (with the slash)."
            return JsonResponse(error_body(code, text), status=status)
        return default(request, *args, **kwargs)

    return handler


def bad_request(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """``handler400``: what Django refuses before a view runs (a body over
    ``DATA_UPLOAD_MAX_MEMORY_SIZE``, more than ``DATA_UPLOAD_MAX_NUMBER_FIELDS`` parameters
    or fields), in the common error body under ``/api/``, else Django's page."""
    if not request.path.startswith("/api/"):
        return defaults.bad_request(request, exception)
    if isinstance(exception, RequestDataTooBig):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        body = error_body(
            "body_too_large",
            f"The request body is larger than {limit} bytes.",
            {"body": [f"at most {limit} bytes"]},
        )
    elif isinstance(exception, TooManyFieldsSent | TooManyFilesSent):
        limit = settings.DATA_UPLOAD_MAX_NUMBER_FIELDS
        body = error_body(
            "too_many_fields",
            f"The request has more than {limit} query parameters or form fields.",
            {"non_field_errors": [f"at most {limit} parameters or fields"]},
        )
    else:
        body = error_body("bad_request", "The request could not be read.")
    API_ERRORS.labels("400", body["error"]["code"]).inc()
    return JsonResponse(body, status=400)
