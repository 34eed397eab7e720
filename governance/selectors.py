"""Reads of governance: items, versions and audit events, with the joins they need."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import Prefetch, Q, QuerySet
from django.utils import timezone

from governance.exceptions import NotFound
from governance.kinds import Kind
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


def version_diff_base(*, version: Version) -> Version | None:
    """What a reviewer compares ``version`` with: the item's active version, or, when none
    is active (or it is the active one), the latest earlier version that was approved."""
    active = (
        Version.objects.filter(item_id=version.item_id, status=VersionStatus.ACTIVE)
        .exclude(pk=version.pk)
        .first()
    )
    if active is not None:
        return active
    return (
        Version.objects.filter(
            item_id=version.item_id, number__lt=version.number, status__in=_EVER_APPROVED
        )
        .order_by("-number")
        .first()
    )


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
