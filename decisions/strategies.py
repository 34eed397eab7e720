"""Strategy versions: one use case's actions, predictions, value and eligibility.

Content::

    {
      "use_case": "cross-sell",
      "description": "...",
      "credit_decision": false,             # true: decides credit applications, so
                                            # declines and worse-than-best terms are
                                            # adverse actions (Regulation B reasons)
      "actions": [{"id": "card", "label": "Credit card", "attributes": {"apr": 0.24, ...}}],
      "fallback_action": "none",            # always available; null when every customer
                                            # must get one of the other actions
      "predictions": [{"quantity": "p_accept",
                       "model": {"name": "take-up", "version": 3},
                       "action_inputs": ["apr"],     # action attributes the model takes
                       "risk": false}],              # a risk model: its reasons explain
                                                    # adverse credit outcomes
      "extra_features": [feature, ...],     # customer inputs used directly in expressions
      "value": "p_accept * (apr * limit * 0.6 - pd * lgd * limit) - cost",
      "eligibility": [{"name": "affordable", "rule": "limit <= 0.5 * income"}]
    }

Expressions may use numeric action attributes, predicted quantities, the numeric
features of the models' schemas and the extra features.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from pathlib import Path
from typing import Any

from decisions.engine.expressions import ExpressionError, parse_expression
from decisions.feature_schema import feature_list_validate
from governance.exceptions import PreconditionFailed
from governance.kinds import kind_get
from governance.models import Version, VersionStatus
from governance.validation import FieldErrors, is_finite_number, is_number

IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
ACTION_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
USABLE_MODEL_STATUSES = (VersionStatus.APPROVED, VersionStatus.ACTIVE)
"""Statuses a referenced version must have before what references it may be approved."""


def expression_check(
    errors: FieldErrors, path: str, source: Any, names: set[str], *, boolean: bool | None
) -> None:
    """Parse ``source`` against ``names``; report syntax and unknown names at ``path``."""
    if not isinstance(source, str) or not source.strip():
        errors.add(path, "must be a non-empty expression")
        return
    try:
        expression = parse_expression(source, allowed_names=names)
    except ExpressionError as exc:
        errors.add(path, str(exc))
        return
    if boolean is True and not expression.is_boolean:
        errors.add(path, "must be a condition (a comparison, and/or/not)")
    if boolean is False and expression.is_boolean:
        errors.add(path, "must be a number, not a condition")


def unique_name_check(
    errors: FieldErrors, where: str, entry: dict[str, Any], seen: set[str]
) -> None:
    """An entry's ``name`` must be an identifier not used by an earlier entry."""
    name = entry.get("name")
    if not isinstance(name, str) or not IDENTIFIER.match(name):
        errors.add(f"{where}.name", "must be an identifier")
    elif name in seen:
        errors.add(f"{where}.name", f"duplicate name {name!r}")
    else:
        seen.add(name)


def rule_list_validate(
    raw: Any, path: str, errors: FieldErrors, *, names: set[str] | None, seen: set[str]
) -> list[Any]:
    """Check ``[{"name", "rule", "description"?}]``; each rule must be a condition."""
    if not isinstance(raw, list):
        errors.add(path, "must be a list of rules")
        return []
    for i, rule in enumerate(raw):
        where = f"{path}[{i}]"
        if not errors.check_keys(rule, where, required=("name", "rule"), optional=("description",)):
            continue
        unique_name_check(errors, where, rule, seen)
        if names is not None:
            expression_check(errors, f"{where}.rule", rule.get("rule"), names, boolean=True)
    return raw


def _model_schema(reference: Any, path: str, errors: FieldErrors) -> list[dict[str, Any]]:
    if not errors.check_keys(reference, path, required=("name", "version")):
        return []
    name, number = reference.get("name"), reference.get("version")
    if not isinstance(name, str) or not isinstance(number, int) or isinstance(number, bool):
        errors.add(path, "needs a model name (string) and version (integer)")
        return []
    version = (
        Version.objects.filter(item__kind="model", item__name=name, number=number)
        .only("content", "status")
        .first()
    )
    if version is None:
        errors.add(path, f"there is no model {name!r} version {number}")
        return []
    if version.status == VersionStatus.REJECTED:
        errors.add(path, f"model {name!r} version {number} was rejected")
    return list(version.content.get("schema", []))


def strategy_vocabulary(content: dict[str, Any]) -> set[str]:
    """The names expressions over this (already valid) strategy may use."""
    names: set[str] = set()
    for action in content.get("actions", []):
        for key, value in action.get("attributes", {}).items():
            if is_number(value) or isinstance(value, bool):
                names.add(key)
    names.update(p["quantity"] for p in content.get("predictions", []))
    for prediction in content.get("predictions", []):
        model = prediction["model"]
        version = (
            Version.objects.filter(
                item__kind="model", item__name=model["name"], number=model["version"]
            )
            .only("content")
            .first()
        )
        if version is not None:
            names.update(
                f["name"] for f in version.content.get("schema", []) if f["type"] == "numeric"
            )
    names.update(f["name"] for f in content.get("extra_features", []) if f["type"] == "numeric")
    return names


def strategy_content_validate(
    content: dict[str, Any], *, artifact: Path | None = None
) -> dict[str, Any]:
    """Check structure, references and every expression; returns the content as stored."""
    errors = FieldErrors()
    errors.check_keys(
        content,
        "",
        required=("use_case", "actions", "value"),
        optional=(
            "description",
            "credit_decision",
            "fallback_action",
            "predictions",
            "extra_features",
            "eligibility",
        ),
    )
    if not isinstance(content.get("use_case"), str) or not content.get("use_case"):
        errors.add("use_case", "must be a non-empty string")
    if not isinstance(content.get("credit_decision", False), bool):
        errors.add("credit_decision", "must be true or false")

    attributes = _actions_validate(content.get("actions"), errors)
    fallback = content.get("fallback_action")
    action_ids = [a.get("id") for a in content.get("actions") or [] if isinstance(a, dict)]
    if fallback is not None and fallback not in action_ids:
        errors.add("fallback_action", "must be the id of one of the actions, or null")

    numeric_attrs = {k for k, v in attributes.items() if v in ("number", "bool")}
    names: set[str] = set(numeric_attrs)
    predictions = content.get("predictions", [])
    quantities: set[str] = set()
    if not isinstance(predictions, list):
        errors.add("predictions", "must be a list")
        predictions = []
    for i, prediction in enumerate(predictions):
        where = f"predictions[{i}]"
        if not errors.check_keys(
            prediction,
            where,
            required=("quantity", "model"),
            optional=("action_inputs", "risk"),
        ):
            continue
        if not isinstance(prediction.get("risk", False), bool):
            errors.add(f"{where}.risk", "must be true or false")
        quantity = prediction.get("quantity")
        if not isinstance(quantity, str) or not IDENTIFIER.match(quantity) or "__" in quantity:
            errors.add(f"{where}.quantity", "must be an identifier")
            continue
        if quantity in quantities or quantity in attributes:
            errors.add(f"{where}.quantity", f"{quantity!r} is already defined")
        quantities.add(quantity)
        schema = _model_schema(prediction.get("model"), f"{where}.model", errors)
        feature_names = {f["name"] for f in schema}
        inputs = prediction.get("action_inputs", [])
        if not isinstance(inputs, list) or not all(isinstance(x, str) for x in inputs):
            errors.add(f"{where}.action_inputs", "must be a list of action attribute names")
            inputs = []
        for name in inputs:
            if name not in attributes:
                errors.add(f"{where}.action_inputs", f"{name!r} is not an action attribute")
            elif schema and name not in feature_names:
                errors.add(f"{where}.action_inputs", f"the model has no feature {name!r}")
        names.update(
            f["name"] for f in schema if f["type"] == "numeric" and f["name"] not in inputs
        )
    names |= quantities

    extra = feature_list_validate(
        content.get("extra_features", []), "extra_features", errors, allow_empty=True
    )
    names.update(f["name"] for f in extra if f["type"] == "numeric")

    expression_check(errors, "value", content.get("value"), names, boolean=False)
    eligibility = rule_list_validate(
        content.get("eligibility", []), "eligibility", errors, names=names, seen=set()
    )

    errors.raise_if_any("The strategy is not valid")
    return {
        "use_case": content["use_case"],
        "description": str(content.get("description", "")),
        "credit_decision": content.get("credit_decision", False),
        "actions": content["actions"],
        "fallback_action": fallback,
        "predictions": predictions,
        "extra_features": extra,
        "value": content["value"],
        "eligibility": eligibility,
    }


def _actions_validate(raw: Any, errors: FieldErrors) -> dict[str, str]:
    """Check the action catalog; returns attribute name -> type ('number', 'bool', 'text')."""
    if not isinstance(raw, list) or not raw:
        errors.add("actions", "must be a non-empty list of actions")
        return {}
    types: dict[str, str] = {}
    ids: set[str] = set()
    for i, action in enumerate(raw):
        where = f"actions[{i}]"
        if not errors.check_keys(
            action, where, required=("id", "attributes"), optional=("label", "description")
        ):
            continue
        action_id = action.get("id")
        if not isinstance(action_id, str) or not ACTION_ID.match(action_id):
            errors.add(f"{where}.id", "must be 1-64 letters, digits, '_', '.', '-'")
        elif action_id in ids:
            errors.add(f"{where}.id", f"duplicate action {action_id!r}")
        else:
            ids.add(action_id)
        attributes = action.get("attributes")
        if not isinstance(attributes, dict):
            errors.add(f"{where}.attributes", "must be an object of name: value")
            continue
        for key, value in attributes.items():
            if not IDENTIFIER.match(key) or "__" in key:
                errors.add(f"{where}.attributes.{key}", "the name must be an identifier")
                continue
            kind = (
                "bool"
                if isinstance(value, bool)
                else "number"
                if is_number(value)
                else "text"
                if isinstance(value, str)
                else None
            )
            if kind is None:
                errors.add(f"{where}.attributes.{key}", "must be a number, true/false or text")
            elif kind == "number" and not is_finite_number(value):
                errors.add(f"{where}.attributes.{key}", "must be a finite number")
            elif types.setdefault(key, kind) != kind:
                errors.add(f"{where}.attributes.{key}", f"must be a {types[key]} like the others")
        if i > 0 and types and set(attributes) != set(types):
            errors.add(f"{where}.attributes", "every action must have the same attributes")
    return types


def strategy_check_models_approved(version: Version) -> None:
    """A strategy may be approved or activated only once every model it uses is approved."""
    refs = [("model", p["model"]) for p in version.content.get("predictions", [])]
    pending = [label.removeprefix("model ") for label in unapproved_references(refs)]
    if pending:
        raise PreconditionFailed(
            "The strategy uses model versions that are not approved: "
            + ", ".join(pending)
            + ". "
            + approve_guidance(pending),
            code="dependency_not_approved",
            details={"models": pending},
        )


def approve_guidance(pending: list[str]) -> str:
    """What the checker can do about versions that block an approval: wait for those
    under review, or reject this one when one of them can never be approved."""
    if all(label.endswith("(submitted)") for label in pending):
        return "Approve those first; they are under review."
    return (
        "A rejected, retired or missing version can never be approved: reject this one "
        "with that reason, and its maker drafts another over approved versions."
    )


REVIEWABLE_STATUSES = frozenset(
    {VersionStatus.SUBMITTED, VersionStatus.APPROVED, VersionStatus.ACTIVE}
)


def strategy_check_models_reviewable(version: Version) -> None:
    """A strategy may be submitted only with models that are under review or approved: a
    checker could not approve it over a draft, and its maker could not move it on."""
    refs = [("model", p["model"]) for p in version.content.get("predictions", [])]
    pending = [label.removeprefix("model ") for label in unreviewable_references(refs)]
    if pending:
        raise PreconditionFailed(
            "The strategy uses model versions that are not submitted or approved: "
            + ", ".join(pending)
            + ". Submit them first, or draft the strategy over approved ones.",
            code="dependency_not_submitted",
            details={"models": pending},
        )


def unreviewable_references(refs: list[tuple[str, dict[str, Any]]]) -> list[str]:
    """``kind name vN (status)`` for each referenced version that is not submitted,
    approved or active (a draft, rejected, retired or missing one)."""
    return references_not_in(refs, REVIEWABLE_STATUSES)


def references_not_in(
    refs: list[tuple[str, dict[str, Any]]], statuses: Collection[str]
) -> list[str]:
    """``kind name vN (status)`` for each referenced version whose status is not one of
    ``statuses`` (a missing one: ``(missing)``)."""
    pending = []
    for kind, ref in refs:
        status = (
            Version.objects.filter(item__kind=kind, item__name=ref["name"], number=ref["version"])
            .values_list("status", flat=True)
            .first()
        )
        if status not in statuses:
            pending.append(_reference_label(kind, ref, status))
    return pending


def _reference_label(kind: str, ref: dict[str, Any], status: str | None) -> str:
    """``constraint set q3-limits v2 (draft)``: the kind in words, as pages name it."""
    return f"{kind_get(kind).label} {ref['name']} v{ref['version']} ({status or 'missing'})"


def unapproved_references(refs: list[tuple[str, dict[str, Any]]]) -> list[str]:
    """``kind name vN (status)`` for each referenced version not approved or active."""
    return references_not_in(refs, USABLE_MODEL_STATUSES)
