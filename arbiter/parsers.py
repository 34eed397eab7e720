"""JSON from clients, read strictly: DRF's parser for the API, ``json_loads`` for JSON
typed into a form field or a multipart part.

Three things Python's ``json`` takes or chokes on are refused as malformed, a 400 and
never a 500:

- nesting deeper than ``MAX_DEPTH``: the decoder gives up with a ``RecursionError`` a few
  thousand levels down, and the code that walks a value afterwards recurses too; nothing
  Arbiter stores is deeper than a dozen levels;
- an integer longer than Python converts (4,300 digits): a ``ValueError`` that is not a
  ``JSONDecodeError``;
- a key twice in one object (``{"age": 40, "age": 17}``): ``json`` keeps the last one
  silently, so the client and Arbiter could read different values;
- ``NaN`` and ``Infinity``, which are not JSON (as DRF's strict parser), and a number too
  large for a float (``1e400``), which ``json`` would read as infinity.
"""

from __future__ import annotations

import json
import math
import sys
from typing import Any

from rest_framework import parsers
from rest_framework.exceptions import ParseError

MAX_DEPTH = 100


class JSONRefused(ValueError):
    """Well-formed JSON that Arbiter will not read; the message says why."""


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise JSONRefused(f"the key {key!r} appears twice in one object")
        result[key] = value
    return result


def _no_constants(name: str) -> Any:
    raise JSONRefused(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        shown = text if len(text) <= 40 else f"{text[:37]}..."
        raise JSONRefused(f"the number {shown} is too large (a float holds up to 1.8e308)")
    return value


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
    """``json.loads`` that raises ``JSONRefused`` (a ``ValueError``) for what the module
    describes, and ``json.JSONDecodeError`` as usual for malformed text."""
    try:
        value = json.loads(
            text,
            object_pairs_hook=_unique_keys,
            parse_constant=_no_constants,
            parse_float=_finite_float,
        )
    except RecursionError:
        raise JSONRefused(f"nested more than {MAX_DEPTH} levels deep") from None
    except json.JSONDecodeError:
        raise
    except JSONRefused:
        raise
    except ValueError:  # an integer of more digits than Python converts
        raise JSONRefused(
            f"an integer with more than {sys.get_int_max_str_digits():,} digits"
        ) from None
    if too_deep(value):
        raise JSONRefused(f"nested more than {MAX_DEPTH} levels deep")
    return value


class JSONParser(parsers.JSONParser):
    """DRF's parser, reading with ``json_loads``: what it refuses is a ``parse_error``."""

    def parse(self, stream: Any, media_type: Any = None, parser_context: Any = None) -> Any:
        encoding = parsers.get_encoding(parser_context or {})
        try:
            text = stream.read().decode(encoding) if stream is not None else ""
            return json_loads(text)
        except JSONRefused as exc:
            raise ParseError(f"JSON parse error - {exc}.") from None
        except ValueError as exc:
            raise ParseError(f"JSON parse error - {exc}") from None
