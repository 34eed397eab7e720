"""Reads of governance: items, versions and audit events, with the joins they need."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import Prefetch, Q, QuerySet
from django.utils import timezone

from governance.exceptions import NotFound
from governance.kinds import Kind, kind_get
from governance.lifecycle import AUDIT_READER_ROLES
from governance.models import AuditEvent, Item, Version, VersionStatus
from governance.roles import require_role

_VERSION_PEOPLE = ("author", "submitted_by", "reviewed_by", "activated_by", "retired_by")


def item_list(*, kind: Kind) -> QuerySet[Item]:
    versions = Version.objects.select_related(*_VERSION_PEOPLE).order_by("number")
    return (
        Item.objects.filter(kind=kind.key)
        .select_related("created_by")
        .prefetch_related(Prefetch("versions", queryset=versions))
        .order_by("name")
    )


def item_get(*, kind: Kind, name: str) -> Item:
    item = Item.objects.filter(kind=kind.key, name=name).first()
    if item is None:
        raise NotFound(f"There is no {kind.label} called {name!r}.")
    return item


def version_list(*, item: Item) -> QuerySet[Version]:
    return (
        item.versions.select_related("item", *_VERSION_PEOPLE)
        .prefetch_related("contributors")
        .order_by("number")
    )


def version_get(*, kind: Kind, name: str, number: int) -> Version:
    version = (
        Version.objects.select_related("item", *_VERSION_PEOPLE)
        .prefetch_related("contributors")
        .filter(item__kind=kind.key, item__name=name, number=number)
        .first()
    )
    if version is None:
        raise NotFound(f"There is no version {number} of the {kind.label} {name!r}.")
    return version


def version_active_list(*, kind: str) -> QuerySet[Version]:
    """The active version of every item of ``kind``, by item name."""
    return (
        Version.objects.filter(item__kind=kind, status=VersionStatus.ACTIVE)
        .select_related("item", *_VERSION_PEOPLE)
        .order_by("item__name")
    )


def version_active_number(*, version: Version) -> int | None:
    """The number of the active version of ``version``'s item other than ``version``: the
    one activating ``version`` would retire. None when there is none."""
    return (
        Version.objects.filter(item_id=version.item_id, status=VersionStatus.ACTIVE)
        .exclude(pk=version.pk)
        .values_list("number", flat=True)
        .first()
    )


def version_latest(*, item: Item) -> Version | None:
    return item.versions.order_by("-number").first()


# Versions that passed a review: the baseline a new version is compared with.
_EVER_APPROVED = (VersionStatus.APPROVED, VersionStatus.ACTIVE, VersionStatus.RETIRED)


@dataclass(frozen=True)
class Baseline:
    """A version to compare with or start from, and why it is that one."""

    version: Version
    why: str
    """Reads after "v5, ": ``which the active deployment onboarding uses``, ``the active
    version``, ``the last approved version (retired)``."""
    also: str = ""
    """Other versions in live use, when the active deployments disagree: ``v3 (which the
    active deployment onboarding-b uses)``; empty when there are none."""


def _and(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def version_live_list(*, item: Item) -> list[tuple[Version, str]]:
    """The versions of ``item`` that decide live through other items, each with who uses
    it, in the kind's order (``Kind.live_uses``; for the decisions kinds: the active
    deployments by name, champion before challengers). Empty for a kind without it."""
    kind = kind_get(item.kind)
    if kind.live_uses is None:
        return []
    uses = kind.live_uses(item.name)
    found = {v.number: v for v in item.versions.filter(number__in={n for n, _ in uses})}
    return [(found[number], who) for number, who in uses if number in found]


def _live_baseline(uses: list[tuple[Version, str]]) -> Baseline | None:
    """The first version in live use, named with everyone who uses it; the others listed."""
    if not uses:
        return None
    chosen = uses[0][0]
    who = [w for v, w in uses if v.pk == chosen.pk]
    others: dict[int, list[str]] = {}
    for v, w in uses:
        if v.pk != chosen.pk:
            others.setdefault(v.number, []).append(w)
    also = "; ".join(
        f"v{number} (which {_and(ws)} {'use' if len(ws) > 1 else 'uses'})"
        for number, ws in others.items()
    )
    return Baseline(chosen, f"which {_and(who)} {'use' if len(who) > 1 else 'uses'}", also)


def version_diff_base(*, version: Version) -> Baseline | None:
    """What a reviewer compares ``version`` with: what decides live. First the version of
    its item that the active deployments use (``version_live_list``, the first when they
    use several: the others are named in ``also``), else the item's active version, else
    (none, or it is the one) the latest earlier version that was approved.

    The active version alone would mislead: a deployment may decide with an approved,
    not active, version, and a draft built from the active one would then undo what is
    live without the diff showing it."""
    live = _live_baseline(
        [(v, who) for v, who in version_live_list(item=version.item) if v.pk != version.pk]
    )
    if live is not None:
        return live
    active = (
        Version.objects.filter(item_id=version.item_id, status=VersionStatus.ACTIVE)
        .exclude(pk=version.pk)
        .first()
    )
    if active is not None:
        return Baseline(active, "the active version")
    approved = (
        Version.objects.filter(
            item_id=version.item_id, number__lt=version.number, status__in=_EVER_APPROVED
        )
        .order_by("-number")
        .first()
    )
    if approved is None:
        return None
    return Baseline(
        approved, f"the last approved version ({approved.get_status_display().lower()})"
    )


def version_start_point(*, item: Item) -> Baseline | None:
    """What a new draft of ``item`` (or a copy of it) starts from: what decides live (as
    ``version_diff_base``), else its active version, else its latest approved one, else,
    nothing approved yet, its newest. Never a rejected version or someone's unreviewed
    draft while reviewed content exists: its diff would hide that it is not what runs."""
    live = _live_baseline(version_live_list(item=item))
    if live is not None:
        return live
    active = item.versions.filter(status=VersionStatus.ACTIVE).first()
    if active is not None:
        return Baseline(active, "the active version")
    latest = item.versions.order_by("-number")
    approved = (
        latest.filter(status=VersionStatus.APPROVED).first()
        or latest.filter(status__in=_EVER_APPROVED).first()
    )
    if approved is not None:
        return Baseline(
            approved, f"the last approved version ({approved.get_status_display().lower()})"
        )
    newest = version_latest(item=item)
    if newest is None:
        return None
    return Baseline(newest, "the newest version: none has been approved yet")


def four_eyes_conflict(
    *, user: AbstractBaseUser | AnonymousUser | None, version: Version
) -> str | None:
    """Why four eyes keep ``user`` from reviewing ``version``: ``"wrote"`` (author or
    contributor), ``"submitted"``, or None when they may review it.

    The services refuse on this same answer; the pages use it to hide the buttons.
    """
    if user is None or not user.is_authenticated:
        return None
    wrote = version.author_id == user.pk or version.contributors.filter(pk=user.pk).exists()
    if wrote:
        return "wrote"
    if version.submitted_by_id == user.pk:
        return "submitted"
    return None


def version_drafts_of(*, user: AbstractBaseUser) -> QuerySet[Version]:
    """Drafts ``user`` wrote or edited, most recently changed first."""
    return (
        Version.objects.filter(status=VersionStatus.DRAFT)
        .filter(Q(author=user) | Q(contributors=user))
        .distinct()
        .select_related("item", *_VERSION_PEOPLE)
        .order_by("-updated_at", "-pk")
    )


def version_reviews_of(*, user: AbstractBaseUser, days: int = 30) -> QuerySet[Version]:
    """Versions ``user`` wrote or edited that a checker approved or rejected in the last
    ``days`` days, most recent review first: the maker's answers, with the reasons."""
    since = timezone.now() - timedelta(days=days)
    return (
        Version.objects.filter(reviewed_at__gte=since)
        .filter(Q(author=user) | Q(contributors=user))
        .distinct()
        .select_related("item", *_VERSION_PEOPLE)
        .order_by("-reviewed_at", "-pk")
    )


def version_review_queue() -> QuerySet[Version]:
    """Every submitted version of every kind, oldest first."""
    return (
        Version.objects.filter(status=VersionStatus.SUBMITTED)
        .select_related("item", *_VERSION_PEOPLE)
        .order_by("submitted_at", "pk")
    )


def version_audit_trail(*, version: Version) -> QuerySet[AuditEvent]:
    """Every governance event of one version, oldest first: its approval trail."""
    return AuditEvent.objects.filter(
        kind=version.item.kind, item_name=version.item.name, version_number=version.number
    ).order_by("seq")


def audit_event_list(
    *,
    reader: AbstractBaseUser | AnonymousUser | None,
    kind: str | None = None,
    item_name: str | None = None,
    actor: str | None = None,
    action: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> QuerySet[AuditEvent]:
    """The audit events the filters select, newest first, for a ``reader`` who holds an
    audit-reading role (``PermissionDenied`` otherwise); ``actor`` filters by who acted,
    ``action`` by what they did (``role_grant``, ``approve``, ...)."""
    require_role(reader, AUDIT_READER_ROLES, action="read the audit trail")
    events = AuditEvent.objects.all().order_by("-seq")
    if kind:
        events = events.filter(kind=kind)
    if item_name:
        events = events.filter(item_name=item_name)
    if actor:
        events = events.filter(actor_username=actor)
    if action:
        events = events.filter(action=action)
    if since:
        events = events.filter(created_at__gte=since)
    if until:
        events = events.filter(created_at__lt=until)
    return events
