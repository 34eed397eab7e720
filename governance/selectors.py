"""Reads of governance: items, versions and audit events, with the joins they need."""

from __future__ import annotations

from datetime import datetime

from django.db.models import Prefetch, QuerySet

from governance.exceptions import NotFound
from governance.kinds import Kind
from governance.models import AuditEvent, Item, Version, VersionStatus

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


def version_active(*, kind: str, name: str) -> Version | None:
    return (
        Version.objects.select_related("item")
        .filter(item__kind=kind, item__name=name, status=VersionStatus.ACTIVE)
        .first()
    )


def version_review_queue() -> QuerySet[Version]:
    """Every submitted version of every kind, oldest first."""
    return (
        Version.objects.filter(status=VersionStatus.SUBMITTED)
        .select_related("item", *_VERSION_PEOPLE)
        .order_by("submitted_at", "pk")
    )


def audit_event_list(
    *,
    kind: str | None = None,
    item_name: str | None = None,
    actor: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> QuerySet[AuditEvent]:
    events = AuditEvent.objects.all().order_by("-seq")
    if kind:
        events = events.filter(kind=kind)
    if item_name:
        events = events.filter(item_name=item_name)
    if actor:
        events = events.filter(actor_username=actor)
    if since:
        events = events.filter(created_at__gte=since)
    if until:
        events = events.filter(created_at__lt=until)
    return events
