"""What a reviewer sees of each kind: tables and formulas, references as links."""

from __future__ import annotations

from decisions.content_presenters import (
    constraint_set_present,
    deployment_present,
    model_present,
    strategy_present,
)
from decisions.demo_portfolio import SCHEMA, cross_sell_constraints, cross_sell_strategy


def by_title(sections):
    return {s.title: s for s in sections}


def rows_text(section):
    return [[c.text for c in row] for row in section.rows]


def test_strategy_actions_table_has_one_column_per_attribute():
    content = cross_sell_strategy(model_name="take-up", model_version=3, revision=2)
    sections = by_title(strategy_present(content))
    actions = sections["Actions"]
    assert actions.columns == ["Id", "Label", "limit", "apr", "cost"]
    assert rows_text(actions)[3] == ["premium-card", "Premium card", "10000", "0.19", "15"]
    assert sections["Value to maximise"].code == "p_accept * apr * limit * 0.5 - cost"
    assert rows_text(sections["Eligibility rules"])[0][:2] == [
        "affordable",
        "limit <= 0.25 * income",
    ]
    assert sections["Eligibility rules"].rows[0][1].code


def test_strategy_predictions_link_to_the_model_version():
    content = cross_sell_strategy(model_name="take-up", model_version=3)
    (row,) = by_title(strategy_present(content))["Predictions"].rows
    assert [c.text for c in row] == ["p_accept", "take-up v3", "—", "false"]
    assert row[1].href == "/registry/models/take-up/v3/"


def test_constraint_set_limits_table():
    sections = by_title(constraint_set_present(cross_sell_constraints(strategy_name="cross-sell")))
    limits = sections["Portfolio limits"]
    assert limits.columns == ["Name", "Sum over customers of", "Sense", "Bound", "Description"]
    assert rows_text(limits)[0] == [
        "marketing_budget",
        "cost",
        "<=",
        "25000",
        "Marketing spend per quarter",
    ]
    assert rows_text(sections["Rules"]) == [["apr_cap", "apr <= 0.36", "Regulatory APR cap"]]


def test_model_schema_metrics_reasons_fingerprint_and_estimator():
    content = {
        "description": "Take-up.",
        "schema": SCHEMA,
        "output": {"type": "probability", "positive_class": 1},
        "metrics": {"auc": 0.71},
        "training_data": {
            "rows": 3200,
            "period": {"start": "2025-01-01", "end": "2025-12-31"},
            "hash": "a" * 64,
        },
        "reference_sample": {"columns": ["income"], "rows": [[1.0], [2.0]]},
        "reason_codes": {"income": {"code": "TU01", "text": "Income level"}},
        "estimator": {
            "class": "sklearn.pipeline.Pipeline",
            "steps": [{"name": "classify", "class": "LogisticRegression"}],
            "sklearn_version": "1.9.1",
            "explainer": "linear",
            "trusted_types": [],
        },
    }
    sections = by_title(model_present(content))
    assert rows_text(sections["Feature schema"])[4] == [
        "region",
        "categorical",
        "—",
        "—",
        "north, south, east, west",
        "true",
    ]
    assert rows_text(sections["Validation metrics"]) == [["auc", "0.71"]]
    assert rows_text(sections["Reason codes"]) == [["income", "TU01", "Income level"]]
    training = dict((label, c.text) for label, c in sections["Training data"].facts)
    assert training == {
        "Rows": "3200",
        "Period": "2025-01-01 to 2025-12-31",
        "SHA-256 of the extract": "a" * 64,
    }
    estimator = dict((label, c.text) for label, c in sections["Estimator"].facts)
    assert estimator["Steps"] == "classify (LogisticRegression)"
    assert estimator["Explained by"] == "linear"


def test_deployment_links_its_versions_and_lists_prices_and_challengers():
    content = {
        "description": "",
        "strategy": {"name": "cross-sell", "version": 2},
        "constraint_set": {"name": "cross-sell-limits", "version": 1},
        "prices": {"marketing_budget": 2.5},
        "price_source": "run 12",
        "salt": "q1",
        "challengers": [
            {
                "arm": "challenger",
                "share": 0.1,
                "strategy": {"name": "cross-sell", "version": 3},
                "constraint_set": {"name": "cross-sell-limits", "version": 1},
                "prices": {"marketing_budget": 3},
            }
        ],
    }
    sections = by_title(deployment_present(content))
    facts = dict(sections["Deployment (champion)"].facts)
    assert facts["Strategy"].href == "/registry/strategies/cross-sell/v2/"
    assert facts["Constraint set"].href == "/registry/constraint-sets/cross-sell-limits/v1/"
    assert facts["Traffic share"].text == "90%"
    assert rows_text(sections["Published prices"]) == [["marketing_budget", "2.5"]]
    (arm,) = sections["Challengers"].rows
    assert [c.text for c in arm] == [
        "challenger",
        "10%",
        "cross-sell v3",
        "cross-sell-limits v1",
        "marketing_budget: 3",
    ]
    assert arm[2].href == "/registry/strategies/cross-sell/v3/"
