"""The registry of governed kinds. Apps register theirs in ``AppConfig.ready``.

Governance knows nothing of what a kind holds: a kind brings its own content validator
and, optionally, checks that must pass before a version may be approved or activated
(``decisions`` uses them so that a strategy cannot be approved while a model version it
uses is not).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from governance.exceptions import NotFound

if TYPE_CHECKING:
    from governance.models import Version

ContentValidator = Callable[..., dict[str, Any]]
"""``validate(content, *, artifact: Path | None) -> normalised content``; raises
``ValidationFailed`` with field-level details."""

VersionCheck = Callable[["Version"], None]
"""Raises a ``DomainError`` when the version may not make the move yet."""


@dataclass(frozen=True)
class Kind:
    key: str
    """Stored in ``Item.kind`` and audit events: ``model``, ``strategy``, ..."""
    slug: str
    """The plural used in URLs: ``models``, ``strategies``, ``constraint-sets``."""
    label: str
    validate: ContentValidator
    has_artifact: bool = False
    artifact_suffix: str = ""
    before_approve: VersionCheck | None = None
    before_activate: VersionCheck | None = None


_KINDS: dict[str, Kind] = {}


def register_kind(kind: Kind) -> None:
    existing = _KINDS.get(kind.key)
    if existing is not None and existing != kind:
        raise RuntimeError(f"kind {kind.key!r} is already registered")
    if any(k.slug == kind.slug and k.key != kind.key for k in _KINDS.values()):
        raise RuntimeError(f"slug {kind.slug!r} is already used")
    _KINDS[kind.key] = kind


def kind_get(key: str) -> Kind:
    try:
        return _KINDS[key]
    except KeyError:
        raise NotFound(f"There is no kind {key!r}.", details={"kinds": sorted(_KINDS)}) from None


def kind_get_by_slug(slug: str) -> Kind:
    for kind in _KINDS.values():
        if kind.slug == slug:
            return kind
    raise NotFound(
        f"There is no registry {slug!r}.",
        details={"registries": sorted(k.slug for k in _KINDS.values())},
    )


def kinds_all() -> list[Kind]:
    return sorted(_KINDS.values(), key=lambda k: k.key)
