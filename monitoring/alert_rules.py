"""Alert rules: a governed kind, so what raises an alarm and whom it wakes passes four eyes.

The item is named after the deployment whose figures it watches (``cross-sell``), like KPI
targets. Content::

    {
      "description": "Alerts for the cross-sell campaigns.",
      "rules": [
        {"name": "take-up-low", "kind": "kpi_below_target", "kpi": "take_up_rate",
         "window_days": 7, "min_decisions": 200, "recipients": ["risk@bank.example"]},
        {"name": "take-up-drift", "kind": "drift_share", "model": "take-up",
         "threshold": 0.3, "recipients": ["models@bank.example"]},
        {"name": "score-psi", "kind": "psi", "model": "take-up", "feature": "score",
         "threshold": 0.25, "recipients": ["models@bank.example"]}
      ]
    }

- ``kpi_below_target`` breaches when the deployment's KPI misses its **governed target**
  (the active ``kpi_targets`` version; ``met`` of ``monitoring.selectors.kpi_report``) over
  the last ``window_days`` (default 7), once at least ``min_decisions`` (default 1)
  decisions were made in it. The threshold is the KPI target itself, governed there.
- ``drift_share`` breaches when the share of drifted features in the model's latest drift
  report is above ``threshold`` (a fraction in (0, 1]).
- ``psi`` breaches when the population stability index of ``feature`` (default: the largest
  over the customer inputs and the score, the drift report's own largest PSI) in the
  model's latest drift report is above ``threshold``. ``feature`` is a customer input of
  the model or ``score``: an input the strategy sets (an action's ``apr``) differs from the
  training data by design and drift reports leave it out of their status, so a rule on it
  is refused at review, like a rule on a feature the model does not have.

A rule's ``name`` identifies it across versions: an alert open under version 3 stays the
same alert under version 4. Recipients are e-mail addresses (at most 50 per rule).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import validate_email

from governance.content_diff import Change, keyed_changes, value_changes
from governance.exceptions import PreconditionFailed
from governance.kinds import Kind, register_kind
from governance.models import Item, Version
from governance.presentation import Cell, Section, display
from governance.validation import FieldErrors, is_finite_number
from monitoring.kpis import KPIS

KIND = "alert_rules"
RULE_KINDS = ("kpi_below_target", "drift_share", "psi")
RULE_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,59}$")
MAX_RULES = 50
MAX_RECIPIENTS = 50
DEFAULT_WINDOW_DAYS = 7
MAX_WINDOW_DAYS = 366
_FIELDS = {
    "kpi_below_target": (("kpi",), ("window_days", "min_decisions")),
    "drift_share": (("model", "threshold"), ()),
    "psi": (("model", "threshold"), ("feature",)),
}
#: A PSI rule's ``feature`` naming the model's score rather than an input.
SCORE = "score"
_COMMON_REQUIRED = ("name", "kind", "recipients")
_COMMON_OPTIONAL = ("note",)


def recipients_validate(raw: Any, path: str, errors: FieldErrors) -> list[str]:
    """A list of 1 to 50 e-mail addresses, lower-cased, duplicates dropped, sorted."""
    if not isinstance(raw, list) or not raw:
        errors.add(path, "must be a list of at least one e-mail address")
        return []
    if len(raw) > MAX_RECIPIENTS:
        errors.add(path, f"at most {MAX_RECIPIENTS} addresses")
    out = set()
    for i, address in enumerate(raw):
        if not isinstance(address, str):
            errors.add(f"{path}[{i}]", "must be an e-mail address")
            continue
        try:
            validate_email(address.strip())
        except ValidationError:
            errors.add(f"{path}[{i}]", f"{address!r} is not an e-mail address")
            continue
        out.add(address.strip().lower())
    return sorted(out)


def _positive_int(raw: Any, path: str, errors: FieldErrors, *, low: int, high: int) -> int:
    if not isinstance(raw, int) or isinstance(raw, bool) or not low <= raw <= high:
        errors.add(path, f"must be a whole number from {low} to {high}")
        return low
    return raw


def _rule_validate(raw: Any, path: str, errors: FieldErrors) -> dict[str, Any] | None:
    if not isinstance(raw, dict):
        errors.add(path, "must be an object")
        return None
    kind = raw.get("kind")
    if kind not in RULE_KINDS:
        errors.add(f"{path}.kind", f"must be one of {', '.join(RULE_KINDS)}")
        return None
    required, optional = _FIELDS[kind]
    if not errors.check_keys(
        raw, path, required=(*_COMMON_REQUIRED, *required), optional=(*_COMMON_OPTIONAL, *optional)
    ):
        return None
    name = raw.get("name")
    if not isinstance(name, str) or not RULE_NAME.match(name):
        errors.add(f"{path}.name", "lower-case letters, digits and hyphens, at most 60")
    note = raw.get("note", "")
    if not isinstance(note, str):
        errors.add(f"{path}.note", "must be a string")
    rule: dict[str, Any] = {"name": name, "kind": kind}
    if kind == "kpi_below_target":
        kpi = raw.get("kpi")
        if kpi not in KPIS:
            errors.add(f"{path}.kpi", f"unknown KPI (known: {', '.join(sorted(KPIS))})")
        rule["kpi"] = kpi
        rule["window_days"] = _positive_int(
            raw.get("window_days", DEFAULT_WINDOW_DAYS),
            f"{path}.window_days",
            errors,
            low=1,
            high=MAX_WINDOW_DAYS,
        )
        rule["min_decisions"] = _positive_int(
            raw.get("min_decisions", 1), f"{path}.min_decisions", errors, low=1, high=10**9
        )
    else:
        model = raw.get("model")
        if not isinstance(model, str) or not model.strip():
            errors.add(f"{path}.model", "must name a model")
        rule["model"] = model
        threshold = raw.get("threshold")
        if not is_finite_number(threshold) or threshold <= 0:
            errors.add(f"{path}.threshold", "must be a positive number")
        elif kind == "drift_share" and threshold > 1:
            errors.add(f"{path}.threshold", "is a share: give a fraction above 0, at most 1")
        rule["threshold"] = threshold
        if kind == "psi":
            feature = raw.get("feature", "")
            if not isinstance(feature, str):
                errors.add(f"{path}.feature", "must be a feature name (or left out: any)")
            rule["feature"] = feature
    rule["recipients"] = recipients_validate(raw.get("recipients"), f"{path}.recipients", errors)
    rule["note"] = note
    return rule


def alert_rules_content_validate(
    content: dict[str, Any], *, artifact: Path | None = None
) -> dict[str, Any]:
    """Normalise alert rules content; ``ValidationFailed`` names every bad field."""
    errors = FieldErrors()
    errors.check_keys(content, "", required=("rules",), optional=("description",))
    description = content.get("description", "")
    if not isinstance(description, str):
        errors.add("description", "must be a string")
    raw_rules = content.get("rules", [])
    if not isinstance(raw_rules, list) or not raw_rules:
        errors.add("rules", "must be a list of at least one rule")
        raw_rules = []
    if len(raw_rules) > MAX_RULES:
        errors.add("rules", f"at most {MAX_RULES} rules")
    rules = []
    seen: set[str] = set()
    for i, raw in enumerate(raw_rules):
        rule = _rule_validate(raw, f"rules[{i}]", errors)
        if rule is None:
            continue
        if rule["name"] in seen:
            errors.add(f"rules[{i}].name", f"{rule['name']!r} is used by another rule")
        seen.add(rule["name"])
        rules.append(rule)
    errors.raise_if_any("The alert rules are not valid")
    return {"description": description, "rules": rules}


def alert_rules_check_deployment(version: Version) -> None:
    """Rules may be submitted, approved or activated only for a deployment that exists,
    their drift rules only for models it decides with (a rule on another model would
    never find its drift report, and never fire), and their PSI rules only on a customer
    input of the model or its score (``psi_features_check``)."""
    from decisions.deployments import deployment_model_names

    name = version.item.name
    if not Item.objects.filter(kind="deployment", name=name).exists():
        raise PreconditionFailed(
            f"There is no deployment called {name!r}; alert rules are named after the "
            "deployment they watch.",
            code="unknown_deployment",
            details={"deployment": name},
        )
    models = deployment_model_names(name) or set()
    strangers = {
        rule.get("name"): rule.get("model")
        for rule in version.content.get("rules", [])
        if rule.get("kind") in ("drift_share", "psi") and rule.get("model") not in models
    }
    if strangers:
        listed = "; ".join(f"rule {r} watches model {m}" for r, m in strangers.items())
        raise PreconditionFailed(
            f"Deployment {name} does not decide with the model these rules watch ({listed}), "
            "so they would never fire. Its models: " + (", ".join(sorted(models)) or "none") + ".",
            code="unknown_model",
            details={f"rules.{r}.model": [f"not a model of deployment {name}"] for r in strangers},
        )
    psi_features_check(version)


def _model_inputs(deployment: str, model: str) -> tuple[set[str], set[str]]:
    """(customer inputs, inputs the strategy sets) of the versions of ``model`` that
    ``deployment`` decides with, as drift reports tell them apart
    (``monitoring.drift.strategy_inputs``)."""
    from decisions.deployments import deployment_model_refs
    from monitoring.drift import strategy_inputs

    numbers = {
        ref["version"] for ref in deployment_model_refs(deployment) or [] if ref["name"] == model
    }
    customer: set[str] = set()
    by_strategy: set[str] = set()
    versions = Version.objects.select_related("item").filter(
        item__kind="model", item__name=model, number__in=numbers
    )
    for model_version in versions:
        schema = model_version.content.get("schema", [])
        set_here = strategy_inputs(model_version, schema)
        by_strategy |= set_here
        customer |= {feature["name"] for feature in schema} - set_here
    return customer, by_strategy - customer


def psi_features_check(version: Version) -> None:
    """A PSI rule's ``feature`` must be a customer input of its model or ``score``.

    A name the model does not have would never be in a drift report (``unknown_feature``);
    an input the strategy sets (the chosen action's ``apr``, ``limit``) differs from the
    training data by design, so drift reports show its PSI but leave it out of their status
    and largest PSI, and a rule on it would alarm on the strategy working as intended
    (``feature_set_by_strategy``). Raises ``PreconditionFailed`` naming every such rule.
    """
    name = version.item.name
    unknown: dict[str, str] = {}
    by_strategy: dict[str, str] = {}
    inputs: dict[str, tuple[set[str], set[str]]] = {}  # per model: read once
    for rule in version.content.get("rules", []):
        feature = rule.get("feature") or ""
        if rule.get("kind") != "psi" or not feature or feature == SCORE:
            continue
        if rule["model"] not in inputs:
            inputs[rule["model"]] = _model_inputs(name, rule["model"])
        customer, set_by_strategy = inputs[rule["model"]]
        if feature in set_by_strategy:
            by_strategy[rule["name"]] = rule["model"]
        elif feature not in customer:
            unknown[rule["name"]] = rule["model"]
    if not unknown and not by_strategy:
        return
    rules = {r["name"]: r for r in version.content["rules"]}
    sentences = []
    details: dict[str, list[str]] = {}
    for rule_name, model in unknown.items():
        feature = rules[rule_name]["feature"]
        inputs = ", ".join(sorted(inputs[model][0]))
        sentences.append(
            f"rule {rule_name} watches {feature}, which model {model} does not have (its "
            f"customer inputs: {inputs}; or {SCORE} for the model's score), so it would "
            "never fire"
        )
        details[f"rules.{rule_name}.feature"] = [f"not a feature of model {model}"]
    for rule_name, model in by_strategy.items():
        feature = rules[rule_name]["feature"]
        sentences.append(
            f"rule {rule_name} watches {feature}, which the strategy sets (an attribute of "
            f"its actions), not the customer: it differs from model {model}'s training data "
            "by design, and drift reports leave it out of their status and largest PSI"
        )
        details[f"rules.{rule_name}.feature"] = [
            "set by the strategy, not the customer: not watched for drift"
        ]
    raise PreconditionFailed(
        "PSI rules watch a customer input of their model or its score: "
        + "; ".join(sentences)
        + ". Name another feature, or leave feature out to watch the largest PSI.",
        code="unknown_feature" if unknown else "feature_set_by_strategy",
        details=details,
    )


def rule_condition(rule: dict[str, Any]) -> str:
    """The rule's condition in words: "Take-up misses its target over 7 days"."""
    if rule.get("kind") == "kpi_below_target":
        kpi = KPIS.get(rule.get("kpi", ""))
        label = kpi.label if kpi else rule.get("kpi")
        return (
            f"{label} misses its KPI target over {rule.get('window_days')} days "
            f"(at least {rule.get('min_decisions')} decisions)"
        )
    if rule.get("kind") == "drift_share":
        return (
            f"share of drifted features of model {rule.get('model')} above "
            f"{display(rule.get('threshold'))}"
        )
    what = (
        f"feature {rule['feature']}" if rule.get("feature") else "any customer input or the score"
    )
    return f"PSI of {what} of model {rule.get('model')} above {display(rule.get('threshold'))}"


def alert_rules_present(content: dict[str, Any]) -> list[Section]:
    rows = [
        [
            Cell(rule.get("name", ""), code=True),
            Cell(rule_condition(rule)),
            Cell(display(rule.get("recipients"))),
            Cell(rule.get("note") or "—"),
        ]
        for rule in content.get("rules", [])
    ]
    return [
        Section("Alert rules", facts=[("Description", Cell(content.get("description") or "—"))]),
        Section(
            "Rules",
            columns=["Rule", "Alert when", "Recipients", "Note"],
            rows=rows,
            empty="No rules.",
        ),
    ]


def alert_rules_changes(old: dict[str, Any], new: dict[str, Any]) -> list[Change]:
    keys = (
        "kind",
        "kpi",
        "model",
        "feature",
        "threshold",
        "window_days",
        "min_decisions",
        "recipients",
        "note",
    )

    def compare(path: str, label: str, a: dict[str, Any], b: dict[str, Any]) -> list[Change]:
        return value_changes(path, label, a, b, keys=keys)

    out = value_changes("", "", old, new, keys=("description",))
    out += keyed_changes(
        "rules", "rule", old.get("rules"), new.get("rules"), key="name", compare=compare
    )
    return out


def alert_rules_example() -> dict[str, Any]:
    """What the reviewer pages offer a maker writing new alert rules: one rule of each kind."""
    return {
        "description": "Alerts for this deployment.",
        "rules": [
            {
                "name": "complaints-high",
                "kind": "kpi_below_target",
                "kpi": "complaint_rate",
                "window_days": DEFAULT_WINDOW_DAYS,
                "min_decisions": 200,
                "recipients": ["risk@bank.example"],
            },
            {
                "name": "model-drift",
                "kind": "drift_share",
                "model": "take-up",
                "threshold": 0.3,
                "recipients": ["models@bank.example"],
            },
        ],
    }


def register_alert_rules_kind() -> None:
    register_kind(
        Kind(
            key=KIND,
            slug="alert-rules",
            label="alert rules",
            plural_label="alert rules",
            item_label="alert rule set",
            validate=alert_rules_content_validate,
            example=alert_rules_example,
            naming="the deployment whose figures they watch (cross-sell)",
            before_submit=alert_rules_check_deployment,
            before_approve=alert_rules_check_deployment,
            before_activate=alert_rules_check_deployment,
            present=alert_rules_present,
            diff=alert_rules_changes,
        )
    )
