"""Constraint-set versions: portfolio limits and per-decision rules for one strategy.

Content::

    {
      "strategy": "cross-sell",      # the strategy item these limits apply to
      "description": "...",
      "portfolio": [{"name": "marketing_budget", "expression": "cost", "sense": "<=",
                     "bound": 50000, "description": "..."}],
      "rules": [{"name": "apr_cap", "rule": "apr <= 0.36", "description": "regulatory cap"}]
    }

A portfolio limit reads: sum over customers of <expression> for the chosen action
<sense> <bound>. Names are checked against the strategy's latest non-rejected version
(the deployment that pairs them checks again against the exact version it uses).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from decisions.strategies import (
    expression_check,
    rule_list_validate,
    strategy_vocabulary,
    unique_name_check,
)
from governance.models import Version, VersionStatus
from governance.validation import FieldErrors, is_finite_number

SENSES = ("<=", ">=")


def _strategy_names(name: Any, errors: FieldErrors) -> set[str] | None:
    if not isinstance(name, str) or not name:
        errors.add("strategy", "must name the strategy these limits apply to")
        return None
    latest = (
        Version.objects.filter(item__kind="strategy", item__name=name)
        .exclude(status=VersionStatus.REJECTED)
        .order_by("-number")
        .only("content")
        .first()
    )
    if latest is None:
        errors.add("strategy", f"there is no strategy {name!r}")
        return None
    return strategy_vocabulary(latest.content)


def constraint_set_content_validate(
    content: dict[str, Any], *, artifact: Path | None = None
) -> dict[str, Any]:
    errors = FieldErrors()
    errors.check_keys(
        content, "", required=("strategy",), optional=("description", "portfolio", "rules")
    )
    names = _strategy_names(content.get("strategy"), errors)
    seen: set[str] = set()

    portfolio = content.get("portfolio", [])
    if not isinstance(portfolio, list):
        errors.add("portfolio", "must be a list of limits")
        portfolio = []
    for i, limit in enumerate(portfolio):
        where = f"portfolio[{i}]"
        if not errors.check_keys(
            limit,
            where,
            required=("name", "expression", "sense", "bound"),
            optional=("description",),
        ):
            continue
        unique_name_check(errors, where, limit, seen)
        if limit.get("sense") not in SENSES:
            errors.add(f"{where}.sense", "must be '<=' or '>='")
        bound = limit.get("bound")
        if not is_finite_number(bound):
            errors.add(f"{where}.bound", "must be a finite number")
        if names is not None:
            expression_check(
                errors, f"{where}.expression", limit.get("expression"), names, boolean=None
            )

    rules = rule_list_validate(content.get("rules", []), "rules", errors, names=names, seen=seen)
    if not portfolio and not rules and not errors:
        errors.add("portfolio", "a constraint set needs at least one limit or rule")

    errors.raise_if_any("The constraint set is not valid")
    return {
        "strategy": content["strategy"],
        "description": str(content.get("description", "")),
        "portfolio": portfolio,
        "rules": rules,
    }
