"""What changed between two versions of a strategy, constraint set, model or deployment.

One function per kind, ``<kind>_changes(old, new) -> list[Change]``, in the words a
reviewer uses ("action card: apr changed from 0.22 to 0.19", "limit marketing_budget:
bound changed from 20000 to 25000"). Lists are matched by their identifiers (actions by
id, limits and rules by name, features by name), never by position, so inserting an
action reads as one addition rather than every later action changing. Pure functions
over validated content: no database.
"""

from __future__ import annotations

from typing import Any

from governance.content_diff import Change, formula_change, keyed_changes, shown, value_changes

# Top-level fields as a reviewer says them.
WORDS = {
    "use_case": "use case",
    "credit_decision": "credit decision",
    "fallback_action": "fallback action",
    "price_source": "price source",
    "sklearn_version": "scikit-learn version",
    "trusted_types": "trusted types",
    "input_columns": "input columns",
    "action_inputs": "action inputs",
}


def _ref_text(ref: Any) -> str:
    if isinstance(ref, dict) and "name" in ref and "version" in ref:
        return f"{ref['name']} v{ref['version']}"
    return shown(ref)


def _ref_change(path: str, label: str, old: Any, new: Any) -> list[Change]:
    if old == new:
        return []
    return [
        Change(
            path, "changed", f"{label} changed from {_ref_text(old)} to {_ref_text(new)}", old, new
        )
    ]


# --- strategies ---------------------------------------------------------------------


def _action_compare(
    path: str, label: str, old: dict[str, Any], new: dict[str, Any]
) -> list[Change]:
    out = value_changes(path, label, old, new, keys=("label", "description"))
    out += value_changes(
        f"{path}.attributes", label, old.get("attributes", {}), new.get("attributes", {})
    )
    return out


def _rule_compare(path: str, label: str, old: dict[str, Any], new: dict[str, Any]) -> list[Change]:
    out = formula_change(f"{path}.rule", label, old.get("rule"), new.get("rule"))
    return out + value_changes(path, label, old, new, keys=("description",))


def _prediction_compare(
    path: str, label: str, old: dict[str, Any], new: dict[str, Any]
) -> list[Change]:
    out = _ref_change(f"{path}.model", f"{label}: model", old.get("model"), new.get("model"))
    normalised_old = {"action_inputs": old.get("action_inputs", []), "risk": old.get("risk", False)}
    normalised_new = {"action_inputs": new.get("action_inputs", []), "risk": new.get("risk", False)}
    return out + value_changes(path, label, normalised_old, normalised_new, words=WORDS)


def _feature_compare(
    path: str, label: str, old: dict[str, Any], new: dict[str, Any]
) -> list[Change]:
    return value_changes(path, label, old, new, keys=_keys_except(old, new, "name"))


def _keys_except(old: dict[str, Any], new: dict[str, Any], *skip: str) -> list[str]:
    keys = list(old) + [k for k in new if k not in old]
    return [k for k in keys if k not in skip]


def strategy_changes(old: dict[str, Any], new: dict[str, Any]) -> list[Change]:
    out = value_changes(
        "",
        "",
        old,
        new,
        keys=("use_case", "description", "credit_decision", "fallback_action"),
        words=WORDS,
    )
    out += keyed_changes(
        "actions",
        "action",
        old.get("actions"),
        new.get("actions"),
        key="id",
        compare=_action_compare,
    )
    out += formula_change("value", "value formula", old.get("value"), new.get("value"), long=True)
    out += keyed_changes(
        "eligibility",
        "eligibility rule",
        old.get("eligibility"),
        new.get("eligibility"),
        key="name",
        compare=_rule_compare,
    )
    out += keyed_changes(
        "predictions",
        "prediction",
        old.get("predictions"),
        new.get("predictions"),
        key="quantity",
        compare=_prediction_compare,
    )
    out += keyed_changes(
        "extra_features",
        "extra feature",
        old.get("extra_features"),
        new.get("extra_features"),
        key="name",
        compare=_feature_compare,
    )
    return out


# --- constraint sets ----------------------------------------------------------------


def _limit_compare(path: str, label: str, old: dict[str, Any], new: dict[str, Any]) -> list[Change]:
    return value_changes(
        path,
        label,
        old,
        new,
        keys=("expression", "sense", "bound", "description"),
        formulas=("expression",),
    )


def constraint_set_changes(old: dict[str, Any], new: dict[str, Any]) -> list[Change]:
    out = value_changes("", "", old, new, keys=("strategy", "description"))
    out += keyed_changes(
        "portfolio",
        "limit",
        old.get("portfolio"),
        new.get("portfolio"),
        key="name",
        compare=_limit_compare,
    )
    out += keyed_changes(
        "rules", "rule", old.get("rules"), new.get("rules"), key="name", compare=_rule_compare
    )
    return out


# --- models -------------------------------------------------------------------------


def _reason_compare(
    path: str, label: str, old: dict[str, Any], new: dict[str, Any]
) -> list[Change]:
    return value_changes(path, label, old, new, keys=("code", "text"))


def _as_entries(catalog: Any) -> list[dict[str, Any]]:
    return [{"feature": k, **v} for k, v in (catalog or {}).items() if isinstance(v, dict)]


def model_changes(old: dict[str, Any], new: dict[str, Any]) -> list[Change]:
    out = value_changes("", "", old, new, keys=("description",))
    out += keyed_changes(
        "schema",
        "feature",
        old.get("schema"),
        new.get("schema"),
        key="name",
        compare=_feature_compare,
    )
    out += value_changes("output", "output", old.get("output", {}), new.get("output", {}))
    out += value_changes("metrics", "", _metric_names(old), _metric_names(new))
    out += keyed_changes(
        "reason_codes",
        "reason code for",
        _as_entries(old.get("reason_codes")),
        _as_entries(new.get("reason_codes")),
        key="feature",
        compare=_reason_compare,
    )
    old_training, new_training = old.get("training_data", {}), new.get("training_data", {})
    out += value_changes(
        "training_data",
        "training data",
        {**old_training, "period": _period(old_training)},
        {**new_training, "period": _period(new_training)},
        keys=("rows", "period", "hash", "source"),
    )
    out += value_changes(
        "estimator",
        "estimator",
        old.get("estimator", {}),
        new.get("estimator", {}),
        keys=("class", "steps", "sklearn_version", "explainer", "trusted_types", "input_columns"),
        words=WORDS,
    )
    old_rows = len(old.get("reference_sample", {}).get("rows", []))
    new_rows = len(new.get("reference_sample", {}).get("rows", []))
    if old.get("reference_sample") != new.get("reference_sample"):
        out.append(
            Change(
                "reference_sample",
                "changed",
                f"reference sample changed ({_rows(old_rows)} before, {_rows(new_rows)} now)",
                old_rows,
                new_rows,
            )
        )
    return out


def _rows(count: int) -> str:
    return f"{count} row" if count == 1 else f"{count} rows"


def _metric_names(content: dict[str, Any]) -> dict[str, Any]:
    # "metric auc changed from 0.71 to 0.73" reads better than "metrics.auc ...".
    return {f"metric {k}": v for k, v in content.get("metrics", {}).items()}


def _period(training: dict[str, Any]) -> str | None:
    period = training.get("period")
    if isinstance(period, dict):
        return f"{period.get('start')} to {period.get('end')}"
    return None


# --- deployments --------------------------------------------------------------------


def _prices_changes(path: str, label: str, old: Any, new: Any) -> list[Change]:
    old_prices = {f"price of {k}": v for k, v in (old or {}).items()}
    new_prices = {f"price of {k}": v for k, v in (new or {}).items()}
    return value_changes(path, label, old_prices, new_prices)


def _arm_compare(path: str, label: str, old: dict[str, Any], new: dict[str, Any]) -> list[Change]:
    out = value_changes(path, label, old, new, keys=("share",))
    for kind in ("strategy", "constraint_set"):
        out += _ref_change(
            f"{path}.{kind}", f"{label}: {kind.replace('_', ' ')}", old.get(kind), new.get(kind)
        )
    return out + _prices_changes(f"{path}.prices", label, old.get("prices"), new.get("prices"))


def deployment_changes(old: dict[str, Any], new: dict[str, Any]) -> list[Change]:
    out: list[Change] = []
    for kind in ("strategy", "constraint_set"):
        out += _ref_change(kind, kind.replace("_", " "), old.get(kind), new.get(kind))
    out += _prices_changes("prices", "", old.get("prices"), new.get("prices"))
    out += value_changes(
        "", "", old, new, keys=("description", "price_source", "salt"), words=WORDS
    )
    out += keyed_changes(
        "challengers",
        "challenger",
        old.get("challengers"),
        new.get("challengers"),
        key="arm",
        compare=_arm_compare,
    )
    return out
