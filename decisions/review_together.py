"""Versions under review for the same strategy: a strategy, its constraint sets and the
models it predicts with.

An analyst often submits a strategy, a constraint set written for it and the model
versions it predicts with at once, so the page of a version under review lists the others
that are under review for the same strategy now, each with its structured diff, its
content and its own review buttons. Arbiter records no link between versions submitted
at the same time: two makers' independent changes to the same strategy are listed too,
so the page says "also under review", never "submitted as one change". Each is still
approved or rejected on its own (four eyes per version). Only a version under review
has the panel: a draft, an approved or a rejected version is not being decided with
anything.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from governance.content_diff import content_changes
from governance.kinds import kind_get
from governance.models import Version, VersionStatus
from governance.presentation import content_sections
from governance.selectors import version_diff_base

OPEN = (VersionStatus.SUBMITTED,)


def _submitted(kind: str, **filters: Any) -> list[Version]:
    return list(
        Version.objects.select_related("item")
        .filter(item__kind=kind, status__in=OPEN, **filters)
        .order_by("item__name", "number")
    )


def _models_of(strategy: Version) -> list[Version]:
    out = []
    for prediction in strategy.content.get("predictions", []):
        ref = prediction.get("model", {})
        version = (
            Version.objects.select_related("item")
            .filter(
                item__kind="model",
                item__name=ref.get("name"),
                number=ref.get("version"),
                status__in=OPEN,
            )
            .first()
        )
        if version is not None and version not in out:
            out.append(version)
    return out


def related_versions(version: Version) -> list[Version]:
    """The other versions under review for the same strategy as this version, which must
    be under review itself (otherwise none)."""
    if version.status != VersionStatus.SUBMITTED:
        return []
    kind = version.item.kind
    related: list[Version] = []
    if kind == "strategy":
        related += _submitted("constraint_set", content__strategy=version.item.name)
        related += _models_of(version)
    elif kind == "constraint_set":
        strategies = _submitted("strategy", item__name=version.content.get("strategy"))
        related += strategies
        for strategy in strategies:
            related += _models_of(strategy)
    elif kind == "model":
        for strategy in _submitted("strategy"):
            if version in _models_of(strategy):
                related.append(strategy)
                related += _submitted("constraint_set", content__strategy=strategy.item.name)
    seen, out = {version.pk}, []
    for v in related:
        if v.pk not in seen:
            seen.add(v.pk)
            out.append(v)
    return out


def together_panel_context(request: HttpRequest, version: Version) -> dict[str, Any] | None:
    from governance.views import move_buttons_for, typed_comment_pop, version_url

    related = related_versions(version)
    if not related:
        return None
    entries = []
    for other in related:
        kind = kind_get(other.item.kind)
        baseline = version_diff_base(version=other)
        base = baseline.version if baseline is not None else None
        entries.append(
            {
                "kind": kind,
                "version": other,
                "url": version_url(other),
                "base": base,
                "baseline": baseline,
                "changes": content_changes(kind, base.content, other.content) if base else None,
                "sections": content_sections(kind, other.content),
                "typed_comment": typed_comment_pop(request, other).get("comment", ""),
                **move_buttons_for(request.user, other),
            }
        )
    if version.item.kind == "strategy":
        strategies = [version.item.name]
    elif version.item.kind == "constraint_set":
        strategies = [str(version.content.get("strategy"))]
    else:
        strategies = sorted({v.item.name for v in related if v.item.kind == "strategy"})
    return {
        "entries": entries,
        "back": version_url(version),
        "strategies": " and ".join(strategies),
        "plural": len(strategies) > 1,
    }
