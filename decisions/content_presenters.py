"""How a reviewer sees each governed kind of the decisions app: tables, not JSON.

One function per kind turns a version's (already validated) content into
``governance.presentation.Section`` objects; governance renders them with one template.
Pure: no database, no HTML. References to other versions become links to their pages.
"""

from __future__ import annotations

from typing import Any

from governance.presentation import Cell, Section, VersionRef, cell, display


def _ref(kind: str, raw: Any) -> Cell:
    ref = VersionRef.parse(kind, raw)
    return Cell(str(ref), ref=ref) if ref is not None else cell(raw)


def _facts(*pairs: tuple[str, Any]) -> list[tuple[str, Cell]]:
    return [(label, value if isinstance(value, Cell) else cell(value)) for label, value in pairs]


def _rules_section(title: str, rules: list[dict[str, Any]], empty: str) -> Section:
    return Section(
        title,
        columns=["Name", "Rule", "Description"],
        rows=[
            [cell(r.get("name")), cell(r.get("rule"), code=True), cell(r.get("description", ""))]
            for r in rules
        ],
        empty=empty,
    )


def _feature_rows(features: list[dict[str, Any]]) -> list[list[Cell]]:
    return [
        [
            cell(f.get("name")),
            cell(f.get("type")),
            cell(f.get("min")),
            cell(f.get("max")),
            cell(f.get("categories")),
            cell(f.get("required", True)),
        ]
        for f in features
    ]


FEATURE_COLUMNS = ["Feature", "Type", "Min", "Max", "Categories", "Required"]


def strategy_present(content: dict[str, Any]) -> list[Section]:
    actions = content.get("actions", [])
    attributes: list[str] = []
    for action in actions:
        attributes += [a for a in action.get("attributes", {}) if a not in attributes]
    sections = [
        Section(
            "Strategy",
            facts=_facts(
                ("Use case", content.get("use_case")),
                ("Description", content.get("description") or "—"),
                ("Credit decision", content.get("credit_decision", False)),
                ("Fallback action", content.get("fallback_action") or "none (always offer one)"),
            ),
        ),
        Section(
            "Actions",
            columns=["Id", "Label", *attributes],
            rows=[
                [
                    cell(a.get("id")),
                    cell(a.get("label", "")),
                    *[cell(a.get("attributes", {}).get(name)) for name in attributes],
                ]
                for a in actions
            ],
            empty="No actions.",
        ),
        Section("Value to maximise", code=str(content.get("value", ""))),
        _rules_section(
            "Eligibility rules", content.get("eligibility", []), "No eligibility rules."
        ),
        Section(
            "Predictions",
            columns=["Quantity", "Model", "Action inputs", "Risk model"],
            rows=[
                [
                    cell(p.get("quantity")),
                    _ref("model", p.get("model")),
                    cell(p.get("action_inputs", [])),
                    cell(p.get("risk", False)),
                ]
                for p in content.get("predictions", [])
            ],
            empty="No predictions.",
        ),
    ]
    if content.get("extra_features"):
        sections.append(
            Section(
                "Extra features",
                columns=FEATURE_COLUMNS,
                rows=_feature_rows(content["extra_features"]),
            )
        )
    return sections


def constraint_set_present(content: dict[str, Any]) -> list[Section]:
    return [
        Section(
            "Constraint set",
            facts=_facts(
                ("Strategy", content.get("strategy")),
                ("Description", content.get("description") or "—"),
            ),
        ),
        Section(
            "Portfolio limits",
            columns=["Name", "Sum over customers of", "Sense", "Bound", "Description"],
            rows=[
                [
                    cell(limit.get("name")),
                    cell(limit.get("expression"), code=True),
                    cell(limit.get("sense")),
                    cell(limit.get("bound")),
                    cell(limit.get("description", "")),
                ]
                for limit in content.get("portfolio", [])
            ],
            empty="No portfolio limits.",
        ),
        _rules_section("Rules", content.get("rules", []), "No per-decision rules."),
    ]


def model_present(content: dict[str, Any]) -> list[Section]:
    output = content.get("output", {})
    training = content.get("training_data", {})
    period = training.get("period", {})
    estimator = content.get("estimator", {})
    steps = ", ".join(f"{s.get('name')} ({s.get('class')})" for s in estimator.get("steps", []))
    reference = content.get("reference_sample", {})
    return [
        Section(
            "Model",
            facts=_facts(
                ("Description", content.get("description") or "—"),
                ("Output", output.get("type")),
                *(
                    [("Positive class", output.get("positive_class"))]
                    if output.get("type") == "probability"
                    else []
                ),
                ("Reference sample", f"{len(reference.get('rows', []))} rows"),
            ),
        ),
        Section(
            "Feature schema", columns=FEATURE_COLUMNS, rows=_feature_rows(content.get("schema", []))
        ),
        Section(
            "Validation metrics",
            columns=["Metric", "Value"],
            rows=[[cell(k), cell(v)] for k, v in content.get("metrics", {}).items()],
            empty="No metrics recorded.",
        ),
        Section(
            "Reason codes",
            columns=["Feature", "Code", "Text shown to customers"],
            rows=[
                [cell(feature), cell(entry.get("code")), cell(entry.get("text"))]
                for feature, entry in content.get("reason_codes", {}).items()
            ],
        ),
        Section(
            "Training data",
            facts=_facts(
                ("Rows", training.get("rows")),
                ("Period", f"{period.get('start', '?')} to {period.get('end', '?')}"),
                ("SHA-256 of the extract", Cell(display(training.get("hash")), code=True)),
                *([("Source", training["source"])] if training.get("source") else []),
            ),
        ),
        Section(
            "Estimator",
            facts=_facts(
                ("Class", Cell(display(estimator.get("class")), code=True)),
                *([("Steps", steps)] if steps else []),
                ("Input columns", estimator.get("input_columns", [])),
                ("scikit-learn", estimator.get("sklearn_version")),
                ("Explained by", estimator.get("explainer")),
                ("Types trusted beyond skops' defaults", estimator.get("trusted_types") or "none"),
            ),
        ),
    ]


def _prices_rows(prices: dict[str, Any]) -> list[list[Cell]]:
    return [[cell(name), cell(price)] for name, price in prices.items()]


def deployment_present(content: dict[str, Any]) -> list[Section]:
    challengers = content.get("challengers", [])
    champion_share = 1 - sum(float(a.get("share", 0)) for a in challengers)
    return [
        Section(
            "Deployment (champion)",
            facts=_facts(
                ("Description", content.get("description") or "—"),
                ("Strategy", _ref("strategy", content.get("strategy"))),
                ("Constraint set", _ref("constraint_set", content.get("constraint_set"))),
                ("Traffic share", f"{champion_share:.0%}"),
                ("Prices from", content.get("price_source") or "—"),
                ("Assignment salt", content.get("salt") or "—"),
            ),
        ),
        Section(
            "Published prices",
            columns=["Limit", "Price"],
            rows=_prices_rows(content.get("prices", {})),
            empty="No prices: every limit is priced at 0.",
        ),
        Section(
            "Challengers",
            columns=["Arm", "Share", "Strategy", "Constraint set", "Prices"],
            rows=[
                [
                    cell(arm.get("arm")),
                    Cell(f"{float(arm.get('share', 0)):.0%}"),
                    _ref("strategy", arm.get("strategy")),
                    _ref("constraint_set", arm.get("constraint_set")),
                    cell(
                        ", ".join(f"{k}: {display(v)}" for k, v in arm.get("prices", {}).items())
                        or "—"
                    ),
                ]
                for arm in challengers
            ],
            empty="No challengers: every customer gets the champion.",
        ),
    ]
