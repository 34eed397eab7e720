"""Deployment versions: which approved strategy and constraint set a channel uses.

Content::

    {
      "description": "...",
      "strategy": {"name": "cross-sell", "version": 2},
      "constraint_set": {"name": "cross-sell-limits", "version": 1},
      "prices": {"marketing_budget": 0.8},          # published dual prices; missing = 0
      "price_source": "optimisation run 12",
      "salt": "q1-2027",                              # champion/challenger assignment
      "challengers": [{"arm": "challenger", "share": 0.1,
                       "strategy": {...}, "constraint_set": {...}, "prices": {...}}]
    }

A customer's arm is fixed by SHA-256(salt:customer_id), so the same customer always meets
the same arm until the salt changes. The item's name is the channel clients ask for.
"""

from __future__ import annotations

import hashlib
import re
from functools import partial
from pathlib import Path
from typing import Any

from decisions.strategies import (
    approve_guidance,
    expression_check,
    strategy_vocabulary,
    unapproved_references,
    unreviewable_references,
)
from governance.exceptions import PreconditionFailed
from governance.models import Version, VersionStatus
from governance.validation import FieldErrors, is_finite_number, is_number

CHAMPION = "champion"
ARM_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,39}$")


def _reference(raw: Any, path: str, kind: str, errors: FieldErrors) -> Version | None:
    if not errors.check_keys(raw, path, required=("name", "version")):
        return None
    name, number = raw.get("name"), raw.get("version")
    if not isinstance(name, str) or not isinstance(number, int) or isinstance(number, bool):
        errors.add(path, "needs a name (string) and a version (integer)")
        return None
    version = (
        Version.objects.select_related("item")
        .filter(item__kind=kind, item__name=name, number=number)
        .first()
    )
    if version is None:
        errors.add(path, f"there is no {kind.replace('_', ' ')} {name!r} version {number}")
    elif version.status == VersionStatus.REJECTED:
        errors.add(path, f"{name!r} version {number} was rejected")
    return version


def _arm_validate(raw: dict[str, Any], path: str, errors: FieldErrors) -> None:
    strategy = _reference(raw.get("strategy"), f"{path}strategy", "strategy", errors)
    limits = _reference(
        raw.get("constraint_set"), f"{path}constraint_set", "constraint_set", errors
    )
    limit_names: set[str] = set()
    if strategy is not None and limits is not None:
        if limits.content.get("strategy") != strategy.item.name:
            errors.add(
                f"{path}constraint_set",
                f"is written for strategy {limits.content.get('strategy')!r}, "
                f"not {strategy.item.name!r}",
            )
        else:
            names = strategy_vocabulary(strategy.content)
            for i, limit in enumerate(limits.content.get("portfolio", [])):
                expression_check(
                    errors,
                    f"{path}constraint_set.portfolio[{i}]",
                    limit["expression"],
                    names,
                    boolean=None,
                )
            for i, rule in enumerate(limits.content.get("rules", [])):
                expression_check(
                    errors, f"{path}constraint_set.rules[{i}]", rule["rule"], names, boolean=True
                )
        limit_names = {lim["name"] for lim in limits.content.get("portfolio", [])}
    prices = raw.get("prices", {})
    if not isinstance(prices, dict):
        errors.add(f"{path}prices", "must be an object of limit name: price")
        return
    for name, price in prices.items():
        if limits is not None and name not in limit_names:
            errors.add(f"{path}prices.{name}", "is not a limit of the constraint set")
        if not is_finite_number(price) or price < 0:
            errors.add(f"{path}prices.{name}", "must be a finite number >= 0")


def deployment_content_validate(
    content: dict[str, Any], *, artifact: Path | None = None
) -> dict[str, Any]:
    errors = FieldErrors()
    errors.check_keys(
        content,
        "",
        required=("strategy", "constraint_set"),
        optional=("description", "prices", "price_source", "salt", "challengers"),
    )
    _arm_validate(content, "", errors)
    salt = content.get("salt", "")
    if not isinstance(salt, str):
        errors.add("salt", "must be a string")
    challengers = content.get("challengers", [])
    if not isinstance(challengers, list):
        errors.add("challengers", "must be a list")
        challengers = []
    total, arms = 0.0, {CHAMPION}
    for i, arm in enumerate(challengers):
        where = f"challengers[{i}]"
        if not errors.check_keys(
            arm,
            where,
            required=("arm", "share", "strategy", "constraint_set"),
            optional=("prices",),
        ):
            continue
        name, share = arm.get("arm"), arm.get("share")
        if not isinstance(name, str) or not ARM_NAME.match(name) or name in arms:
            errors.add(f"{where}.arm", "must be a new lower-case name other than 'champion'")
        else:
            arms.add(name)
        if not is_number(share) or not 0 < share < 1:
            errors.add(f"{where}.share", "must be a number between 0 and 1")
        else:
            total += share
        _arm_validate(arm, f"{where}.", errors)
    if total >= 1:
        errors.add("challengers", "shares must add up to less than 1 (the champion keeps the rest)")
    errors.raise_if_any("The deployment is not valid")
    return {
        "description": str(content.get("description", "")),
        "strategy": content["strategy"],
        "constraint_set": content["constraint_set"],
        "prices": dict(content.get("prices", {})),
        "price_source": str(content.get("price_source", "")),
        "salt": salt,
        "challengers": challengers,
    }


def _arm_references(version: Version) -> list[tuple[str, dict[str, Any]]]:
    """Every version a deployment decides with, in every arm: the strategy, the constraint
    set, and the models the strategy predicts with."""
    arms = [version.content, *version.content.get("challengers", [])]
    refs = [(kind, arm[kind]) for arm in arms for kind in ("strategy", "constraint_set")]
    for arm in arms:
        refs += [("model", model) for model in strategy_model_refs(arm.get("strategy"))]
    unique: list[tuple[str, dict[str, Any]]] = []
    for ref in refs:
        if ref not in unique:
            unique.append(ref)
    return unique


def deployment_check_versions_approved(version: Version) -> None:
    """A deployment may be approved or activated only with approved versions in every arm,
    down to the models its strategies predict with (one retired after its strategy was
    approved would otherwise decide again)."""
    pending = unapproved_references(_arm_references(version))
    if pending:
        raise PreconditionFailed(
            "The deployment uses versions that are not approved: "
            + ", ".join(pending)
            + ". "
            + approve_guidance(pending),
            code="dependency_not_approved",
            details={"versions": pending},
        )


def deployment_check_versions_reviewable(version: Version) -> None:
    """A deployment may be submitted only with versions under review or approved in every
    arm: over a draft a checker could not approve it, and its maker would be stuck."""
    pending = unreviewable_references(_arm_references(version))
    if pending:
        raise PreconditionFailed(
            "The deployment uses versions that are not submitted or approved: "
            + ", ".join(pending)
            + ". Submit them first, or point the deployment at approved versions.",
            code="dependency_not_submitted",
            details={"versions": pending},
        )


def deployment_users_of(version: Version) -> list[str]:
    """``deployment NAME vN`` for each active deployment whose arms use ``version`` (a
    strategy or constraint set), or a strategy that uses it (a model)."""
    kind, ref = version.item.kind, {"name": version.item.name, "version": version.number}
    users = []
    active = Version.objects.select_related("item").filter(
        item__kind="deployment", status=VersionStatus.ACTIVE
    )
    for deployment in active:
        arms = [deployment.content, *deployment.content.get("challengers", [])]
        if kind in ("strategy", "constraint_set"):
            used = any(_same(arm.get(kind), ref) for arm in arms)
        elif kind == "model":
            used = any(ref in strategy_model_refs(arm.get("strategy")) for arm in arms)
        else:
            used = False
        if used:
            users.append(f"deployment {deployment.item.name} v{deployment.number}")
    return users


def deployment_versions_in_use(kind: str, name: str) -> list[tuple[int, str]]:
    """``(version number, who uses it)`` for each use of item ``name`` of ``kind`` (a
    strategy, constraint set, or a model through its strategy) by an active deployment:
    deployments by name, in each the champion before the challengers. What decides live,
    which may be an approved version while another is marked active in the registry."""
    uses: list[tuple[int, str]] = []
    active = (
        Version.objects.select_related("item")
        .filter(item__kind="deployment", status=VersionStatus.ACTIVE)
        .order_by("item__name")
    )
    for deployment in active:
        arms = [(CHAMPION, deployment.content)]
        arms += [(arm.get("arm", "?"), arm) for arm in deployment.content.get("challengers", [])]
        for arm_name, arm in arms:
            if kind in ("strategy", "constraint_set"):
                refs = [arm.get(kind)]
            elif kind == "model":
                refs = strategy_model_refs(arm.get("strategy"))
            else:
                refs = []
            who = f"the active deployment {deployment.item.name}"
            if arm_name != CHAMPION:
                who += f" (challenger arm {arm_name})"
            for ref in refs:
                number = ref.get("version") if isinstance(ref, dict) else None
                used = ref and ref.get("name") == name and isinstance(number, int)
                if used and (number, who) not in uses:
                    uses.append((number, who))
    return uses


# One object each, so that registering the kinds again compares equal.
model_versions_in_use = partial(deployment_versions_in_use, "model")
strategy_versions_in_use = partial(deployment_versions_in_use, "strategy")
constraint_set_versions_in_use = partial(deployment_versions_in_use, "constraint_set")


def deployment_model_refs(name: str) -> list[dict[str, Any]] | None:
    """``{"name", "version"}`` of each model version deployment ``name`` decides with, in
    every arm, by its active version (or its newest one when none is active); None when
    there is no such deployment."""
    versions = Version.objects.filter(item__kind="deployment", item__name=name)
    version = (
        versions.filter(status=VersionStatus.ACTIVE).first()
        or versions.exclude(status=VersionStatus.REJECTED).order_by("-number").first()
    )
    if version is None:
        return None
    return [ref for kind, ref in _arm_references(version) if kind == "model"]


def deployment_model_names(name: str) -> set[str] | None:
    """The models deployment ``name`` decides with (``deployment_model_refs``' names)."""
    refs = deployment_model_refs(name)
    return None if refs is None else {ref["name"] for ref in refs}


def _same(a: Any, b: dict[str, Any]) -> bool:
    return isinstance(a, dict) and a.get("name") == b["name"] and a.get("version") == b["version"]


def strategy_model_refs(ref: Any) -> list[dict[str, Any]]:
    """``{"name", "version"}`` of each model strategy version ``ref`` predicts with."""
    if not isinstance(ref, dict):
        return []
    strategy = Version.objects.filter(
        item__kind="strategy", item__name=ref.get("name"), number=ref.get("version")
    ).first()
    if strategy is None:
        return []
    return [
        {"name": p["model"].get("name"), "version": p["model"].get("version")}
        for p in strategy.content.get("predictions", [])
        if isinstance(p.get("model"), dict)
    ]


def version_check_not_in_use(version: Version, replaced_by: Version | None = None) -> None:
    """A model, strategy or constraint-set version the active deployments decide with
    stays usable: retiring it (asked for, or by activating ``replaced_by``, another version
    of its item) waits until the deployments have moved off it. Decisions go on with what
    the active deployment names, so a retired version in use would be a decommissioned one
    still deciding."""
    users = deployment_users_of(version)
    if not users:
        return
    label = version.item.kind.replace("_", " ")
    who = f"{' and '.join(users)} {'decide' if len(users) > 1 else 'decides'} with it"
    if replaced_by is None:
        message = (
            f"{label.capitalize()} {version.item.name} v{version.number} cannot be retired: "
            f"{who}. Activate a deployment version that does not, first."
        )
    else:
        message = (
            f"Activating {label} {version.item.name} v{replaced_by.number} would retire "
            f"v{version.number}, and {who}. Activate a deployment version that uses "
            f"v{replaced_by.number} first; the active deployment decides which version runs."
        )
    raise PreconditionFailed(message, code="version_in_use", details={"used_by": users})


def arm_for(*, content: dict[str, Any], customer_id: str) -> tuple[str, dict[str, Any]]:
    """The arm (name and its strategy/constraint/prices) a customer is assigned to."""
    digest = hashlib.sha256(f"{content.get('salt', '')}:{customer_id}".encode()).hexdigest()
    u = int(digest[:15], 16) / 16**15
    edge = 0.0
    for arm in content.get("challengers", []):
        edge += arm["share"]
        if u < edge:
            return arm["arm"], arm
    return CHAMPION, content
