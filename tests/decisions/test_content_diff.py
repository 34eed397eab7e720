"""The structured diff a checker reads: field by field, in words, never raw JSON."""

from __future__ import annotations

import copy

import pytest

from decisions.content_diff import (
    constraint_set_changes,
    deployment_changes,
    model_changes,
    strategy_changes,
)
from decisions.demo_portfolio import SCHEMA, cross_sell_constraints, cross_sell_strategy
from governance.content_diff import Change


def texts(changes: list[Change]) -> list[str]:
    return [c.text for c in changes]


@pytest.fixture
def strategy() -> dict:
    return cross_sell_strategy(model_name="take-up", model_version=1)


def test_identical_content_has_no_changes(strategy):
    assert strategy_changes(strategy, copy.deepcopy(strategy)) == []


def test_an_attribute_change_names_the_action_and_both_values(strategy):
    new = copy.deepcopy(strategy)
    new["actions"][1]["attributes"]["apr"] = 0.19
    (change,) = strategy_changes(strategy, new)
    assert change.text == "action card: apr changed from 0.24 to 0.19"
    assert (change.field, change.kind, change.old, change.new) == (
        "actions[card].attributes.apr",
        "changed",
        0.24,
        0.19,
    )


def test_actions_are_matched_by_id_not_position(strategy):
    new = copy.deepcopy(strategy)
    premium = {
        "id": "premium-card",
        "label": "Premium card",
        "attributes": {"limit": 10000, "apr": 0.19, "cost": 15},
    }
    new["actions"].insert(1, premium)  # every later action moves one place down
    del new["actions"][3]  # the loan
    changes = strategy_changes(strategy, new)
    assert texts(changes) == ["action premium-card added", "action loan removed"]
    assert [c.kind for c in changes] == ["added", "removed"]
    assert changes[0].new == premium


def test_reordering_actions_is_one_change(strategy):
    new = copy.deepcopy(strategy)
    new["actions"] = [new["actions"][i] for i in (0, 2, 1)]
    assert texts(strategy_changes(strategy, new)) == [
        "order of actions changed from none, card, loan to none, loan, card"
    ]


def test_a_new_value_formula_is_shown_old_and_new(strategy):
    new = copy.deepcopy(strategy)
    new["value"] = "p_accept * apr * limit * 0.6 - cost"
    (change,) = strategy_changes(strategy, new)
    assert change.text == "value formula changed"
    assert change.detail and change.old == strategy["value"] and change.new == new["value"]


def test_eligibility_rules_are_compared_by_name(strategy):
    new = copy.deepcopy(strategy)
    new["eligibility"][0]["rule"] = "limit <= 0.3 * income"
    new["eligibility"][1]["description"] = "Three late payments: no offer."
    new["eligibility"].append({"name": "adult", "rule": "months_on_book >= 0"})
    assert texts(strategy_changes(strategy, new)) == [
        "eligibility rule adult added",
        "eligibility rule affordable changed from `limit <= 0.25 * income` to "
        "`limit <= 0.3 * income`",
        'eligibility rule no_recent_arrears: description changed from "Customers with three '
        'or more late payments get no offer." to "Three late payments: no offer."',
    ]


def test_labels_descriptions_flags_and_model_references(strategy):
    new = copy.deepcopy(strategy)
    new["actions"][1]["label"] = "Cashback card"
    new["description"] = "Cross-sell for 2027."
    new["credit_decision"] = True
    new["predictions"][0]["model"] = {"name": "take-up", "version": 2}
    new["predictions"][0]["action_inputs"] = ["apr"]
    assert texts(strategy_changes(strategy, new)) == [
        'description changed from "Which product, if any, to offer each existing customer." '
        'to "Cross-sell for 2027."',
        "credit decision added (true)",
        'action card: label changed from "Credit card" to "Cashback card"',
        "prediction p_accept: model changed from take-up v1 to take-up v2",
        "prediction p_accept: action inputs changed from none to apr",
    ]


def test_constraint_set_limits_and_rules():
    old = cross_sell_constraints(strategy_name="cross-sell")
    old["portfolio"][0]["bound"] = 20000
    new = cross_sell_constraints(strategy_name="cross-sell")  # bound 25000
    new["portfolio"][1]["expression"] = "p_accept * limit * 1.1"
    new["portfolio"][1]["sense"] = ">="
    new["rules"].append({"name": "card_apr_cap", "rule": "apr <= 0.3"})
    del old["rules"][0]
    assert texts(constraint_set_changes(old, new)) == [
        "limit marketing_budget: bound changed from 20000 to 25000",
        "limit new_exposure: expression changed from `p_accept * limit` to "
        "`p_accept * limit * 1.1`",
        'limit new_exposure: sense changed from "<=" to ">="',
        "rule apr_cap added",
        "rule card_apr_cap added",
    ]


def test_a_bound_written_as_float_is_not_a_change():
    old = cross_sell_constraints(strategy_name="cross-sell")
    new = copy.deepcopy(old)
    new["portfolio"][0]["bound"] = 25000.0
    assert constraint_set_changes(old, new) == []


def model_content(**overrides) -> dict:
    content = {
        "description": "Take-up.",
        "schema": copy.deepcopy(SCHEMA),
        "output": {"type": "probability", "positive_class": 1},
        "metrics": {"auc": 0.71},
        "training_data": {
            "rows": 3200,
            "period": {"start": "2025-01-01", "end": "2025-12-31"},
            "hash": "a" * 64,
        },
        "reference_sample": {"columns": ["income"], "rows": [[1.0]]},
        "reason_codes": {"income": {"code": "TU01", "text": "Income level"}},
        "estimator": {"class": "sklearn.pipeline.Pipeline", "sklearn_version": "1.9.1"},
    }
    content.update(overrides)
    return content


def test_model_features_metrics_reasons_and_fingerprint():
    old = model_content()
    new = model_content(
        metrics={"auc": 0.73, "gini": 0.46},
        training_data={
            "rows": 4000,
            "period": {"start": "2025-01-01", "end": "2026-06-30"},
            "hash": "b" * 64,
        },
        reason_codes={
            "income": {"code": "TU01", "text": "Your income"},
            "x": {"code": "TU09", "text": "X"},
        },
        reference_sample={"columns": ["income"], "rows": [[1.0], [2.0]]},
    )
    new["schema"].append({"name": "x", "type": "numeric", "min": 0, "max": 1})
    new["schema"][0]["max"] = 2_000_000
    assert texts(model_changes(old, new)) == [
        "feature x added",
        "feature income: max changed from 1000000 to 2000000",
        "metric auc changed from 0.71 to 0.73",
        "metric gini added (0.46)",
        "reason code for x added",
        'reason code for income: text changed from "Income level" to "Your income"',
        "training data: rows changed from 3200 to 4000",
        'training data: period changed from "2025-01-01 to 2025-12-31" to '
        '"2025-01-01 to 2026-06-30"',
        f'training data: hash changed from "{"a" * 64}" to "{"b" * 64}"',
        "reference sample changed (1 row before, 2 rows now)",
    ]


def test_model_feature_removed_and_estimator_changed():
    old = model_content()
    new = model_content(estimator={"class": "sklearn.linear_model.LogisticRegression"})
    new["schema"] = [f for f in new["schema"] if f["name"] != "region"]
    assert texts(model_changes(old, new)) == [
        "feature region removed",
        'estimator: class changed from "sklearn.pipeline.Pipeline" to '
        '"sklearn.linear_model.LogisticRegression"',
        "estimator: scikit-learn version removed",
    ]


def deployment(**overrides) -> dict:
    content = {
        "description": "",
        "strategy": {"name": "cross-sell", "version": 1},
        "constraint_set": {"name": "cross-sell-limits", "version": 1},
        "prices": {"marketing_budget": 2.5},
        "price_source": "",
        "salt": "q1",
        "challengers": [],
    }
    content.update(overrides)
    return content


def test_deployment_references_prices_and_challengers():
    old = deployment()
    new = deployment(
        strategy={"name": "cross-sell", "version": 2},
        prices={"marketing_budget": 3, "new_exposure": 0.1},
        salt="q2",
        challengers=[
            {
                "arm": "challenger",
                "share": 0.1,
                "strategy": {"name": "cross-sell", "version": 3},
                "constraint_set": {"name": "cross-sell-limits", "version": 1},
            }
        ],
    )
    assert texts(deployment_changes(old, new)) == [
        "strategy changed from cross-sell v1 to cross-sell v2",
        "price of marketing_budget changed from 2.5 to 3",
        "price of new_exposure added (0.1)",
        'salt changed from "q1" to "q2"',
        "challenger challenger added",
    ]
    later = copy.deepcopy(new)
    later["challengers"][0]["share"] = 0.2
    later["challengers"][0]["strategy"]["version"] = 4
    assert texts(deployment_changes(new, later)) == [
        "challenger challenger: share changed from 0.1 to 0.2",
        "challenger challenger: strategy changed from cross-sell v3 to cross-sell v4",
    ]
