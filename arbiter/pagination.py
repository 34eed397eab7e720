"""Pagination for the API's lists, strict about its parameters.

DRF quietly ignores a page size, limit or offset it cannot read (and caps one too large),
and answers a cursor it cannot decode with 404 "Invalid cursor", as if the list were
missing. Here each is a 400 naming the parameter, as any other bad parameter is, and the
schema gives each parameter's range.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import connection
from django.db.models import IntegerField
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.pagination import CursorPagination, LimitOffsetPagination
from rest_framework.request import Request

MAX_PAGE = 500


def _whole(request: Request, name: str, *, least: int, most: int | None, default: Any) -> Any:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = None
    if value is None or value < least or (most is not None and value > most):
        bound = f"from {least} to {most}" if most is not None else f"of {least} or more"
        raise ValidationError({name: [f"must be a whole number {bound}"]})
    return value


def _ranged(params: list[dict[str, Any]], name: str, least: int, most: int | None) -> None:
    for param in params:
        if param["name"] == name:
            param["schema"]["minimum"] = least
            if most is not None:
                param["schema"]["maximum"] = most


class Cursor(CursorPagination):
    """Newest first by ``ordering``; ``page_size`` from 1 to ``max_page_size``."""

    page_size_query_param = "page_size"
    max_page_size = MAX_PAGE

    def get_page_size(self, request: Request) -> int:
        return _whole(
            request,
            self.page_size_query_param,
            least=1,
            most=self.max_page_size,
            default=self.page_size,
        )

    def paginate_queryset(self, queryset: Any, request: Request, view: Any = None) -> Any:
        self._model = queryset.model
        return super().paginate_queryset(queryset, request, view)

    def decode_cursor(self, request: Request) -> Any:
        try:
            cursor = super().decode_cursor(request)
            if cursor is not None and cursor.position is not None:
                self._check_position(cursor.position)
        except (NotFound, DjangoValidationError, ValueError, TypeError, OverflowError):
            raise ValidationError(
                {
                    self.cursor_query_param: [
                        "Not a cursor this list gave out: use a next or previous link as "
                        "it is, or leave the cursor out to start at the first page."
                    ]
                }
            ) from None
        return cursor

    def _check_position(self, position: str) -> None:
        """Raise unless ``position`` is a value of the ordering field the database takes:
        a cursor is the client's to send back, so it may have been made up."""
        model = getattr(self, "_model", None)
        if model is None:
            return
        ordering = self.ordering if isinstance(self.ordering, str) else self.ordering[0]
        field = model._meta.get_field(ordering.lstrip("-"))
        value = field.to_python(position)
        if value is None:
            raise ValueError("no position")
        if isinstance(field, IntegerField):
            low, high = connection.ops.integer_field_range(field.get_internal_type())
            if (low is not None and value < low) or (high is not None and value > high):
                raise ValueError("out of range")
        elif isinstance(value, datetime) and value.tzinfo is None:
            raise ValueError("a cursor's moment has its offset")

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        params = super().get_schema_operation_parameters(view)
        _ranged(params, self.page_size_query_param, 1, self.max_page_size)
        return params


class Pages(LimitOffsetPagination):
    """``limit`` from 1 to ``max_limit``, ``offset`` from 0."""

    max_limit = MAX_PAGE

    def get_limit(self, request: Request) -> int:
        return _whole(
            request,
            self.limit_query_param,
            least=1,
            most=self.max_limit,
            default=self.default_limit,
        )

    def get_offset(self, request: Request) -> int:
        return _whole(request, self.offset_query_param, least=0, most=None, default=0)

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        params = super().get_schema_operation_parameters(view)
        _ranged(params, self.limit_query_param, 1, self.max_limit)
        _ranged(params, self.offset_query_param, 0, None)
        return params
