"""JSON from clients, with nesting bounded: DRF's parser for the API, ``json_loads`` for
JSON typed into a form field or a multipart part.

Python's decoder gives up with a ``RecursionError`` a few thousand levels down, and the
code that walks a value afterwards (validation, canonical hashing, diffs) recurses too.
Nothing Arbiter stores is deeper than a dozen levels, so more than ``MAX_DEPTH`` is
refused as malformed: a 400, never a 500.
"""

from __future__ import annotations

import json
from typing import Any

from rest_framework import parsers
from rest_framework.exceptions import ParseError

MAX_DEPTH = 100


class JSONTooDeep(ValueError):
    def __init__(self) -> None:
        super().__init__(f"nested more than {MAX_DEPTH} levels deep")


def too_deep(value: Any, limit: int = MAX_DEPTH) -> bool:
    """Whether objects and arrays in ``value`` nest more than ``limit`` levels (iterative:
    it does not recurse itself)."""
    if not isinstance(value, dict | list):
        return False
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return True
        children = node.values() if isinstance(node, dict) else node
        stack.extend((c, depth + 1) for c in children if isinstance(c, dict | list))
    return False


def json_loads(text: str | bytes) -> Any:
    """``json.loads`` that raises ``JSONTooDeep`` (a ``ValueError``) for nesting beyond
    ``MAX_DEPTH``; ``json.JSONDecodeError`` as usual for malformed text."""
    try:
        value = json.loads(text)
    except RecursionError:
        raise JSONTooDeep() from None
    if isinstance(value, dict | list) and too_deep(value):
        raise JSONTooDeep()
    return value


class JSONParser(parsers.JSONParser):
    """DRF's parser; a body nested beyond ``MAX_DEPTH`` is a ``parse_error`` like any
    other malformed JSON."""

    def parse(self, stream: Any, media_type: Any = None, parser_context: Any = None) -> Any:
        try:
            value = super().parse(stream, media_type, parser_context)
        except RecursionError:
            value = None
            deep = True
        else:
            deep = isinstance(value, dict | list) and too_deep(value)
        if deep:
            raise ParseError(f"JSON parse error - the body is nested more than {MAX_DEPTH} levels.")
        return value
