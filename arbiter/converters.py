"""Path converters shared by the URL confs: importing this module registers them."""

from __future__ import annotations

from django.urls import register_converter

from governance.models import NAME_PATTERN


class ItemNameConverter:
    """``<name:...>``: a registry item's name as ``governance.models.NAME_PATTERN`` allows.

    Anything else (a NUL byte, a space, upper case) matches no route, so it is a 404
    before any view or query sees it: PostgreSQL refuses NUL in text, which had made
    ``/api/v1/deployments/%00/`` a 500.
    """

    regex = NAME_PATTERN.removeprefix("^").removesuffix("$")

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


register_converter(ItemNameConverter, "name")
