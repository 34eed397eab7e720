"""How the reviewer pages show a version's content: sections of facts, tables and formulas.

A kind's presenter (``Kind.present``) turns content into ``Section`` objects; one template
renders them all, so every value goes through Django's autoescaping and no kind writes
HTML. Presenters stay pure: a reference to another governed version is a ``VersionRef``,
which this module turns into a link to that version's page.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from django.urls import NoReverseMatch, reverse

from governance.exceptions import NotFound
from governance.kinds import Kind, kind_get


@dataclass(frozen=True)
class VersionRef:
    """A governed version another version names (a strategy's model, a deployment's strategy)."""

    kind: str
    name: str
    number: int

    @classmethod
    def parse(cls, kind: str, raw: Any) -> VersionRef | None:
        """A ``{"name", "version"}`` reference as content writes it; None if it is not one."""
        if isinstance(raw, dict) and "name" in raw and "version" in raw:
            return cls(kind, str(raw["name"]), int(raw["version"]))
        return None

    @property
    def url(self) -> str:
        try:
            slug = kind_get(self.kind).slug
            return reverse(
                "ui:version-detail", kwargs={"slug": slug, "name": self.name, "number": self.number}
            )
        except (NotFound, NoReverseMatch):
            return ""

    def __str__(self) -> str:
        return f"{self.name} v{self.number}"


@dataclass(frozen=True)
class Cell:
    """One value on the page: plain text, optionally code-styled or a link to a version."""

    text: str
    code: bool = False
    ref: VersionRef | None = None

    @property
    def href(self) -> str:
        return self.ref.url if self.ref is not None else ""


@dataclass(frozen=True)
class Section:
    """A titled part of a version's content: facts (label: value), a table, or a formula."""

    title: str
    facts: list[tuple[str, Cell]] = field(default_factory=list)
    columns: list[str] = field(default_factory=list)
    rows: list[list[Cell]] = field(default_factory=list)
    code: str = ""
    empty: str = ""
    """What to say when there is nothing to show (``"No eligibility rules."``)."""


def display(value: Any) -> str:
    """A JSON value as a person reads it: numbers as written, true/false, lists joined."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))  # 25000.0 reads as the 25000 someone typed
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(v, str | int | float) for v in value):
        return ", ".join(display(v) for v in value) or "—"
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def cell(value: Any, *, code: bool = False) -> Cell:
    return Cell(display(value), code=code)


def json_sections(content: dict[str, Any]) -> list[Section]:
    """The fallback for kinds without a presenter: the content as pretty JSON."""
    return [
        Section("Content", code=json.dumps(content, indent=2, ensure_ascii=False, sort_keys=True))
    ]


def content_sections(kind: Kind, content: dict[str, Any]) -> list[Section]:
    """The kind's presentation of ``content``; pretty JSON if it has none or it fails.

    A presenter that trips over unexpected content must not hide the version from its
    reviewer, so any error falls back to the JSON, which always renders.
    """
    if kind.present is None:
        return json_sections(content)
    try:
        return kind.present(content)
    except (KeyError, TypeError, ValueError, AttributeError):
        return json_sections(content)
