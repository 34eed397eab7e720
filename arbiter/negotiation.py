"""Content negotiation that answers an unknown ``?format=`` with a 400 naming the formats.

DRF's default raises ``Http404`` when no renderer has the format asked for, so a typo in
``?format=cvs`` read as "there is no such resource".
"""

from __future__ import annotations

from typing import Any

from rest_framework.exceptions import ValidationError
from rest_framework.negotiation import DefaultContentNegotiation


class FormatNegotiation(DefaultContentNegotiation):
    def filter_renderers(self, renderers: list[Any], format: str) -> list[Any]:
        matching = [renderer for renderer in renderers if renderer.format == format]
        if not matching:
            known = ", ".join(dict.fromkeys(renderer.format for renderer in renderers))
            raise ValidationError({"format": [f"must be one of: {known}"]})
        return matching
