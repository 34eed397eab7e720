"""Collecting field-level problems so that one response names every bad field at once."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from governance.exceptions import ValidationFailed

REQUIRED = "this field is required"


class FieldErrors:
    """Problems keyed by a field path such as ``actions[2].attributes.apr``."""

    def __init__(self) -> None:
        self._errors: dict[str, list[str]] = {}

    def add(self, path: str, message: str) -> None:
        problems = self._errors.setdefault(path or "content", [])
        # A missing field is only that: not also "must be a list", "unknown name", ...
        if message == REQUIRED:
            problems[:] = [REQUIRED]
        elif REQUIRED not in problems:
            problems.append(message)

    def __bool__(self) -> bool:
        return bool(self._errors)

    def raise_if_any(self, summary: str) -> None:
        if self._errors:
            first_path, first = next(iter(self._errors.items()))
            raise ValidationFailed(f"{summary}: {first_path}: {first[0]}", details=self._errors)

    def check_keys(
        self,
        obj: Mapping[str, Any],
        path: str,
        *,
        required: Iterable[str] = (),
        optional: Iterable[str] = (),
    ) -> bool:
        """Report missing and unknown keys; returns False when ``obj`` is not an object."""
        if not isinstance(obj, Mapping):
            self.add(path, "must be an object")
            return False
        required, optional = set(required), set(optional)
        for key in sorted(required - obj.keys()):
            self.add(_join(path, key), REQUIRED)
        for key in sorted(obj.keys() - required - optional):
            allowed = ", ".join(sorted(required | optional))
            self.add(_join(path, key), f"unknown field (allowed: {allowed})")
        return True


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def is_number(value: Any) -> bool:
    """A JSON number: int or float, not bool (``True`` is an int in Python)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def is_finite_number(value: Any) -> bool:
    """A JSON number a float holds: not NaN or infinite, and not an integer too large for
    a float (JSON allows ``1`` followed by 400 zeros; ``math.isfinite`` raises on it)."""
    if not is_number(value):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


# Unicode's explicit direction controls (embeddings, overrides, isolates): one in a note
# or a content string makes what follows it display reversed or reordered, so a reviewer
# could read something other than what is stored ("Trojan Source", CVE-2021-42574).
# Ordinary right-to-left text needs none of them.
BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def bidi_controls_in(value: Any, path: str) -> list[str]:
    """The paths under ``path`` of the strings (keys included) in ``value`` that hold a
    direction control; iterative, so any depth the parser let through is fine."""
    found: list[str] = []
    stack: list[tuple[Any, str]] = [(value, path)]
    while stack:
        node, where = stack.pop()
        if isinstance(node, str):
            if not BIDI_CONTROLS.isdisjoint(node):
                found.append(where)
        elif isinstance(node, dict):
            for key, child in node.items():
                child_path = _join(where, str(key))
                if isinstance(key, str) and not BIDI_CONTROLS.isdisjoint(key):
                    found.append(child_path)
                stack.append((child, child_path))
        elif isinstance(node, list):
            stack.extend((child, f"{where}[{i}]") for i, child in enumerate(node))
    return sorted(found)
