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

import math
import re
from pathlib import Path
from typing import Any

from decisions.strategies import expression_check, strategy_vocabulary
from governance.models import Version, VersionStatus
from governance.validation import FieldErrors, is_number

IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
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

    def check_name(where: str, entry: dict[str, Any]) -> None:
        name = entry.get("name")
        if not isinstance(name, str) or not IDENTIFIER.match(name):
            errors.add(f"{where}.name", "must be an identifier")
        elif name in seen:
            errors.add(f"{where}.name", f"duplicate name {name!r}")
        else:
            seen.add(name)

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
        check_name(where, limit)
        if limit.get("sense") not in SENSES:
            errors.add(f"{where}.sense", "must be '<=' or '>='")
        bound = limit.get("bound")
        if not is_number(bound) or not math.isfinite(bound):
            errors.add(f"{where}.bound", "must be a finite number")
        if names is not None:
            expression_check(
                errors, f"{where}.expression", limit.get("expression"), names, boolean=None
            )

    rules = content.get("rules", [])
    if not isinstance(rules, list):
        errors.add("rules", "must be a list of rules")
        rules = []
    for i, rule in enumerate(rules):
        where = f"rules[{i}]"
        if not errors.check_keys(rule, where, required=("name", "rule"), optional=("description",)):
            continue
        check_name(where, rule)
        if names is not None:
            expression_check(errors, f"{where}.rule", rule.get("rule"), names, boolean=True)
    if not portfolio and not rules and not errors:
        errors.add("portfolio", "a constraint set needs at least one limit or rule")

    errors.raise_if_any("The constraint set is not valid")
    return {
        "strategy": content["strategy"],
        "description": str(content.get("description", "")),
        "portfolio": portfolio,
        "rules": rules,
    }
