"""The registry of governed kinds. Apps register theirs in ``AppConfig.ready``.

Governance knows nothing of what a kind holds: a kind brings its own content validator
and, optionally, checks that must pass before a version may be approved or activated
(``decisions`` uses them so that a strategy cannot be approved while a model version it
uses is not), and how the reviewer pages show its content and what changed between two
versions. A kind without them is shown as pretty JSON and compared path by path.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.utils.text import capfirst

from governance.exceptions import NotFound

if TYPE_CHECKING:
    from governance.content_diff import Change
    from governance.models import Version
    from governance.presentation import Section

ContentValidator = Callable[..., dict[str, Any]]
"""``validate(content, *, artifact: Path | None) -> normalised content``; raises
``ValidationFailed`` with field-level details."""

VersionCheck = Callable[["Version"], None]
"""Raises a ``DomainError`` when the version may not make the move yet."""

RetireCheck = Callable[..., None]
"""``check(version, replaced_by=None)``: raises a ``DomainError`` when ``version`` may not
be retired, by a retire (``replaced_by`` None) or by activating ``replaced_by``."""

ContentPresenter = Callable[[dict[str, Any]], list["Section"]]
"""``present(content) -> sections`` for people: tables and formulas instead of JSON. Pure."""

ContentDiffer = Callable[[dict[str, Any], dict[str, Any]], list["Change"]]
"""``diff(old, new) -> changes`` in plain language, field by field. Pure."""

LiveUses = Callable[[str], list[tuple[int, str]]]
"""``live_uses(item_name) -> [(version number, who uses it)]``: the versions of an item
that something else decides with (a strategy named by an active deployment), in a fixed
order, the first being the one a reviewer compares with; ``who`` reads after "which", as
in ``the active deployment onboarding``."""


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
    before_submit: VersionCheck | None = None
    """Refuses submitting a version a checker could not approve as it stands (one that
    uses drafts)."""
    before_approve: VersionCheck | None = None
    before_activate: VersionCheck | None = None
    before_retire: RetireCheck | None = None
    """Refuses retiring a version while in use: asked for, or (``replaced_by``) by the
    activation of another version of its item."""
    present: ContentPresenter | None = None
    """How the reviewer pages show a version's content; None: pretty JSON."""
    diff: ContentDiffer | None = None
    """What changed between two versions' content; None: a generic path-by-path diff."""
    live_uses: LiveUses | None = None
    """Which versions of an item decide live through other items; None: only its active
    version does. What a reviewer compares with, and what a new draft starts from."""
    plural_label: str = ""
    """The plural in words when the slug does not give it (``KPI targets``)."""
    item_label: str = ""
    """One item in words when the label is a plural (``alert rule set`` for the item
    holding alert rules); empty: the label."""
    example: Callable[[], dict[str, Any]] | None = None
    """Content a new item of this kind starts from on the reviewer pages; None: ``{}``."""
    naming: str = ""
    """What an item of this kind is named after, when that matters (``the deployment it
    watches``); shown where a new one is named."""
    retiring_active: str = ""
    """What stops when the item's active version is retired, for the warning on its page
    and the reason asked (``{name}``: the item's name); empty: only that it has none."""
    activating: str = ""
    """What changes at once when a version of the item is activated (``{name}``: the
    item's name, ``{number}``: the version's), for the warning before the activation that
    retires the active version; empty: only that it becomes the active version."""

    def retire_active_warning(self, name: str) -> str:
        """The sentence the version page shows before the active version is retired."""
        effect = self.retiring_active.format(name=name) if self.retiring_active else ""
        return (
            f"This is the active version of {self.label} {name}: retiring it leaves {name} "
            f"with no active version{f', and {effect}' if effect else ''}. A retired version "
            "cannot be made active again: to restore it, activate another approved version, "
            "or take a new one through review."
        )

    def retire_approved_warning(self, name: str, number: int) -> str:
        """The sentence the version page shows before an approved (not active) version is
        retired."""
        return (
            f"{capfirst(self.label)} {name} v{number} is approved and can still be activated. "
            "A retired version never can: to use this content later, a maker writes it "
            "again as a new version and it goes through review again."
        )

    def activate_replacing_warning(self, name: str, number: int, active_number: int) -> str:
        """The sentence the version page shows before activating ``number`` retires the
        item's active version ``active_number``: activation retires it in the same step."""
        effect = (
            self.activating.format(name=name, number=number)
            if self.activating
            else f"{self.label} {name} v{number} becomes the active version"
        )
        return (
            f"{capfirst(effect)}; v{active_number}, active now, will be retired and cannot be "
            "activated again."
        )

    @property
    def item_noun(self) -> str:
        """One item of the kind in words: ``strategy``, ``alert rule set``."""
        return self.item_label or self.label

    @property
    def an_item(self) -> str:
        """``a strategy``, ``an alert rule set``."""
        noun = self.item_noun
        return f"{'an' if noun[:1].lower() in 'aeiou' else 'a'} {noun}"

    @property
    def plural(self) -> str:
        """The kind's plural in words, from its URL slug: ``constraint sets``."""
        return self.plural_label or self.slug.replace("-", " ")


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
    """Every kind, in the order the apps registered them (``decisions``: models first, then
    the strategies, constraint sets and deployments built on them), which is the order the
    reviewer pages list them in."""
    return list(_KINDS.values())
