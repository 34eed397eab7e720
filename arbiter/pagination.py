"""Pagination for the API's lists, strict about its parameters.

DRF quietly ignores a page size, limit or offset it cannot read (and caps one too large),
and answers a cursor it cannot decode with 404 "Invalid cursor", as if the list were
missing. Here each is a 400 naming the parameter, as any other bad parameter is, and the
schema gives each parameter's range.
"""

from __future__ import annotations

from typing import Any

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

    def decode_cursor(self, request: Request) -> Any:
        try:
            return super().decode_cursor(request)
        except NotFound:
            raise ValidationError(
                {
                    self.cursor_query_param: [
                        "Not a cursor this list gave out: use a next or previous link as "
                        "it is, or leave the cursor out to start at the first page."
                    ]
                }
            ) from None

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
