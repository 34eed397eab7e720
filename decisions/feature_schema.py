"""Feature schemas: what a model (or a strategy) needs from each customer.

A feature is ``{"name", "type": "numeric"|"categorical", "min"?, "max"?,
"categories"?, "required"?}``. The same checks serve model registration, strategies'
extra features and, later, request validation.
"""

from __future__ import annotations

import re
from typing import Any

from governance.validation import FieldErrors, is_finite_number

FEATURE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
FEATURE_TYPES = ("numeric", "categorical")


def feature_list_validate(
    raw: Any, path: str, errors: FieldErrors, *, allow_empty: bool = False
) -> list[dict[str, Any]]:
    """Check a list of feature definitions; returns them normalised (``required`` filled)."""
    if not isinstance(raw, list) or (not raw and not allow_empty):
        errors.add(path, "must be a non-empty list of features")
        return []
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for i, feature in enumerate(raw):
        where = f"{path}[{i}]"
        if not errors.check_keys(
            feature,
            where,
            required=("name", "type"),
            optional=("min", "max", "categories", "required", "description"),
        ):
            continue
        name, kind = feature.get("name"), feature.get("type")
        if not isinstance(name, str) or not FEATURE_NAME.match(name) or "__" in name:
            errors.add(f"{where}.name", "must be an identifier (letters, digits, _)")
            continue
        if name in seen:
            errors.add(f"{where}.name", f"duplicate feature {name!r}")
        seen.add(name)
        if kind not in FEATURE_TYPES:
            errors.add(f"{where}.type", "must be 'numeric' or 'categorical'")
            continue
        item = {"name": name, "type": kind, "required": feature.get("required", True)}
        if not isinstance(item["required"], bool):
            errors.add(f"{where}.required", "must be true or false")
        if "description" in feature:
            item["description"] = str(feature["description"])
        if kind == "numeric":
            if "categories" in feature:
                errors.add(f"{where}.categories", "only categorical features have categories")
            for bound in ("min", "max"):
                if bound in feature:
                    value = feature[bound]
                    if not is_finite_number(value):
                        errors.add(f"{where}.{bound}", "must be a finite number")
                    else:
                        item[bound] = value
            if "min" in item and "max" in item and item["min"] > item["max"]:
                errors.add(f"{where}.min", "is greater than max")
        else:
            for bound in ("min", "max"):
                if bound in feature:
                    errors.add(f"{where}.{bound}", "only numeric features have a range")
            categories = feature.get("categories")
            if (
                not isinstance(categories, list)
                or not categories
                or not all(isinstance(c, str) for c in categories)
                or len(set(categories)) != len(categories)
            ):
                errors.add(f"{where}.categories", "must be a non-empty list of distinct strings")
            else:
                item["categories"] = categories
        out.append(item)
    return out


def value_problem(feature: dict[str, Any], value: Any) -> str | None:
    """Why ``value`` does not fit ``feature``, or None. Missing values are checked elsewhere."""
    if feature["type"] == "numeric":
        if not is_finite_number(value):
            return "must be a finite number"
        if "min" in feature and value < feature["min"]:
            return f"must be at least {feature['min']}"
        if "max" in feature and value > feature["max"]:
            return f"must be at most {feature['max']}"
        return None
    if not isinstance(value, str):
        return "must be a string"
    if value not in feature["categories"]:
        return f"must be one of {', '.join(feature['categories'])}"
    return None
