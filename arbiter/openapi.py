"""The API's OpenAPI schema (drf-spectacular), true to what the endpoints answer.

``ArbiterAutoSchema`` adds to every operation the error answers it can give, in the one
error body (``arbiter.api_errors``): 400 (bad input, or an unknown ``?format=``), 401
(no or bad API key), 403 (a role the operation does not allow), 404 where the path names
something, 415 for a body the operation does not take, and 503 (the database, and for
some operations the task queue or a model file, unavailable). An operation documents its
own answer for any of these codes where it says more, and its 409 and 422 (``conflict``,
``unprocessable``). List endpoints name their paginator (``pagination_class``) so their
pages are described as pages, not bare arrays. ``tests/arbiter/test_openapi_conformance.py``
holds every operation to its schema.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers


class ErrorDetailSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="machine-readable, e.g. invalid, not_found")
    message = serializers.CharField(help_text="a sentence for people")
    details = serializers.JSONField(
        help_text="for invalid input, the messages of each field by field name"
    )


class ErrorSerializer(serializers.Serializer):
    error = ErrorDetailSerializer()


ERRORS = {
    "400": "Bad input: the fields' messages are in error.details",
    "401": "No API key, or one that is malformed, unknown, revoked or expired",
    "403": "The key's user does not have a role this operation allows",
    "404": "Not found (or not visible to this user)",
    "415": "A body in a content type the operation does not take",
    "503": "Unavailable for now (database_unavailable, and where the operation says so, "
    "task_queue_unavailable, decision_log_unavailable, deployment_unavailable); retry",
}


class ArbiterAutoSchema(AutoSchema):
    def _get_response_bodies(self, direction: Any = "response") -> dict[str, Any]:
        responses = super()._get_response_bodies(direction)
        if direction != "response":
            return responses
        for code, description in ERRORS.items():
            if code == "404" and "{" not in self.path and self.method != "POST":
                continue  # no path parameter names anything (a POST may name it in its body)
            if code == "415" and self.method not in ("POST", "PUT", "PATCH"):
                continue
            if code not in responses:
                responses[code] = self._get_response_for_code(
                    OpenApiResponse(ErrorSerializer, description=description), code
                )
        return responses


def not_found(what: str) -> OpenApiResponse:
    """A documented 404 for an operation whose query or body names something: ``what``
    says what may not exist."""
    return OpenApiResponse(ErrorSerializer, description=f"Not found: {what}")


def conflict(what: str) -> OpenApiResponse:
    """A documented 409: the request clashes with the current state, ``what``."""
    return OpenApiResponse(ErrorSerializer, description=f"Conflict: {what}")


def unprocessable(what: str) -> OpenApiResponse:
    """A documented 422: something else must be true first, ``what``."""
    return OpenApiResponse(ErrorSerializer, description=f"Precondition not met: {what}")
