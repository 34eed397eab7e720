"""The compiled decision function: choices, eligibility, prices, batch equals one by one."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from decisions.demo_portfolio import (
    cross_sell_constraints,
    cross_sell_strategy,
    synthetic_customers,
    take_up_model,
)
from decisions.engine.decision_function import NO_ACTION, CompileError, compile_decision_function
from decisions.engine.predictors import ModelRuntime

_CACHE: dict = {}


def decision_function(revision: int = 1):
    if "runtime" not in _CACHE:
        estimator, content = take_up_model(rows=1500)
        _CACHE["runtime"] = ModelRuntime.from_content(
            key="take-up v1", estimator=estimator, content=content
        )
    return compile_decision_function(
        strategy=cross_sell_strategy(model_name="take-up", model_version=1, revision=revision),
        constraints=cross_sell_constraints(strategy_name="cross-sell"),
        runtimes={("take-up", 1): _CACHE["runtime"]},
    )


def columns(frame):
    return {c: frame[c].to_numpy() for c in frame.columns}


def test_choice_maximises_value_among_eligible_actions():
    fn = decision_function()
    customers = synthetic_customers(500, seed=1)
    result = fn.evaluate(columns(customers))
    assert result.value.shape == (500, 3) and result.usage.shape == (2, 500, 3)
    best = np.where(result.eligible, result.value, -np.inf).max(axis=1)
    assert np.allclose(result.chosen_value(), best)
    assert set(result.choice) <= {0, 1, 2}
    # The rule "limit <= 0.25 * income" refuses the loan (8000) below an income of 32,000.
    poor = customers["income"].to_numpy() < 32_000
    assert poor.any() and not result.eligible[poor, 2].any()
    assert result.failed_rules["affordable"][poor, 2].all()
    # "none" is always available.
    assert result.eligible[:, 0].all()


def test_prices_make_resource_hungry_actions_worth_less():
    fn = decision_function()
    customers = columns(synthetic_customers(400, seed=2))
    free = fn.evaluate(customers)
    marketing = [lim.name for lim in fn.limits].index("marketing_budget")
    prices = np.zeros(fn.m)
    prices[marketing] = 1e6  # any spend now costs more than it can earn
    priced = fn.evaluate(customers, prices=prices)
    assert (free.choice != 0).sum() > 0
    assert (priced.choice == 0).all()
    card = priced.eligible[:, 1]
    expected = free.value[card, 1] - 1e6 * fn.numeric_attributes["cost"][1]
    assert np.allclose(priced.score[card, 1], expected)
    assert np.isneginf(priced.score[~card, 1]).all()


def test_greater_or_equal_limits_are_negated_into_less_or_equal_form():
    fn = decision_function()
    constraints = cross_sell_constraints(strategy_name="cross-sell")
    constraints["portfolio"].append(
        {"name": "min_offers", "expression": "limit > 0", "sense": ">=", "bound": 10}
    )
    fn = compile_decision_function(
        strategy=cross_sell_strategy(model_name="take-up", model_version=1),
        constraints=constraints,
        runtimes={("take-up", 1): _CACHE["runtime"]},
    )
    result = fn.evaluate(columns(synthetic_customers(5, seed=3)))
    assert fn.limit_bounds()[-1] == -10
    assert (result.usage[-1][:, 1:] == -1).all() and (result.usage[-1][:, 0] == 0).all()


def test_without_a_fallback_a_customer_may_have_no_eligible_action():
    strategy = cross_sell_strategy(model_name="take-up", model_version=1)
    strategy["fallback_action"] = None
    strategy["eligibility"].append({"name": "never", "rule": "limit < 0"})
    decision_function()
    fn = compile_decision_function(
        strategy=strategy, constraints=None, runtimes={("take-up", 1): _CACHE["runtime"]}
    )
    result = fn.evaluate(columns(synthetic_customers(3, seed=4)))
    assert (result.choice == NO_ACTION).all()


def test_compile_refuses_missing_models_and_unknown_names():
    decision_function()
    with pytest.raises(CompileError, match="was not loaded"):
        compile_decision_function(
            strategy=cross_sell_strategy(model_name="take-up", model_version=2),
            constraints=None,
            runtimes={("take-up", 1): _CACHE["runtime"]},
        )
    constraints = cross_sell_constraints(strategy_name="cross-sell")
    constraints["portfolio"][0]["expression"] = "mystery"
    with pytest.raises(CompileError, match="unknown name 'mystery'"):
        compile_decision_function(
            strategy=cross_sell_strategy(model_name="take-up", model_version=1),
            constraints=constraints,
            runtimes={("take-up", 1): _CACHE["runtime"]},
        )


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    n=st.integers(1, 40),
    price=st.lists(st.floats(0, 50, allow_nan=False), min_size=2, max_size=2),
)
def test_batch_of_n_equals_n_single_calls(seed, n, price):
    fn = decision_function(revision=2)
    customers = synthetic_customers(n, seed=seed)
    batch = fn.evaluate(columns(customers), prices=price)
    for i in range(n):
        one = fn.evaluate(columns(customers.iloc[[i]]), prices=price)
        assert one.choice[0] == batch.choice[i]
        np.testing.assert_allclose(one.value[0], batch.value[i], rtol=1e-12, atol=1e-12)
        np.testing.assert_array_equal(one.eligible[0], batch.eligible[i])
        np.testing.assert_allclose(one.usage[:, 0], batch.usage[:, i], rtol=1e-12, atol=1e-12)
