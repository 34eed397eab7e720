"""The portfolio simulator: believable behaviour, models the registry accepts, sane limits."""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import scipy.sparse
from scipy.optimize import linprog

from decisions.demo_portfolio import write_skops
from decisions.engine.decision_function import compile_decision_function
from decisions.engine.explain import explainer_for, principal_reasons
from decisions.engine.predictors import ModelRuntime
from decisions.simulator import behaviour, training
from decisions.simulator.population import FEATURES
from decisions.simulator.use_cases import USE_CASES, UseCase, population, use_case
from governance import services

pytestmark = pytest.mark.django_db

_TRAINED: dict[str, UseCase] = {}


def trained(name: str) -> UseCase:
    """Each use case trained once per test session (about a second each)."""
    if name not in _TRAINED:
        _TRAINED[name] = use_case(name, seed=7)
    return _TRAINED[name]


# --- the registry accepts everything -----------------------------------------------------


@pytest.mark.parametrize("name", USE_CASES)
def test_models_strategy_and_constraints_pass_the_real_registry(name, maker, tmp_path: Path):
    case = trained(name)
    versions = {}
    for model_name, (estimator, content) in case.models.items():
        json.dumps(content, allow_nan=False)  # plain JSON, as the API would receive it
        path = write_skops(estimator, tmp_path / f"{model_name}.skops")
        with open(path, "rb") as artifact:
            version = services.version_create(
                actor=maker, kind="model", name=model_name, content=content, artifact=artifact
            )
        assert version.content["estimator"]["input_columns"] == [
            f["name"] for f in content["schema"]
        ]
        versions[model_name] = version.number

    strategy = services.version_create(
        actor=maker, kind="strategy", name=name, content=case.strategy(versions)
    )
    assert strategy.content["fallback_action"] == case.fallback_action
    limits = services.version_create(
        actor=maker,
        kind="constraint_set",
        name=f"{name}-limits",
        content=case.constraints(name),
    )
    assert limits.content["portfolio"] and limits.content["rules"]


@pytest.mark.parametrize("name", USE_CASES)
def test_every_input_has_a_unique_customer_facing_reason_code(name):
    for _, content in trained(name).models.values():
        codes = content["reason_codes"]
        assert set(codes) == {f["name"] for f in content["schema"]}
        assert len({c["code"] for c in codes.values()}) == len(codes)
        assert all(c["text"][0].isupper() and "_" not in c["text"] for c in codes.values())


def test_the_catalogs_are_small_enough_to_score_and_start_with_the_fallback():
    sizes = {name: len(behaviour.action_catalog(name)) for name in USE_CASES}
    assert sizes == {"collections": 37, "onboarding": 21, "cross-sell": 6}
    assert [trained(n).actions[0]["id"] for n in USE_CASES] == ["none", "decline", "none"]


def test_the_simulator_imports_no_django():
    package = Path(training.__file__).parent
    for module in package.glob("*.py"):
        tree = ast.parse(module.read_text(encoding="utf-8"))
        imported = {
            name.split(".")[0]
            for node in ast.walk(tree)
            if isinstance(node, ast.Import | ast.ImportFrom)
            for name in (
                [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module]
            )
            if name
        }
        assert not imported & {"django", "rest_framework", "governance"}, module.name


def test_a_strategy_needs_a_version_for_every_model():
    with pytest.raises(KeyError, match="onboarding-take-up"):
        trained("onboarding").strategy({"onboarding-pd": 1})
    with pytest.raises(ValueError, match="unknown use case"):
        use_case("mortgages")


# --- population -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", USE_CASES)
def test_population_is_seeded_and_typed_as_the_engine_builds_frames(name):
    first, again = population(name, 500, seed=3), population(name, 500, seed=3)
    pd.testing.assert_frame_equal(first, again)
    assert not first.equals(population(name, 500, seed=4))
    for column in first.columns:
        expected = np.float64 if FEATURES[column]["type"] == "numeric" else object
        assert first[column].dtype == expected, column


@pytest.mark.parametrize("name", USE_CASES)
def test_population_values_fit_every_schema_the_use_case_declares(name):
    case = trained(name)
    people = population(name, 5_000, seed=11)
    schema = [f for _, content in case.models.values() for f in content["schema"]]
    action_inputs = {i for p in case.predictions for i in p.action_inputs}
    for feature in schema + case.extra_features:
        if feature["name"] in action_inputs:
            continue
        values = people[feature["name"]]
        if feature["type"] == "numeric":
            assert values.between(feature["min"], feature["max"]).all(), feature["name"]
        else:
            assert set(values) <= set(feature["categories"]), feature["name"]


def test_features_are_correlated_like_a_real_book():
    people = population("onboarding", 5_000, seed=5)
    correlation = people.select_dtypes("number").corr()
    assert correlation.loc["bureau_score", "delinquencies"] < -0.3
    assert correlation.loc["bureau_score", "utilisation"] < -0.3
    assert correlation.loc["bureau_score", "income"] > 0.1
    retired = people["employment_type"] == "retired"
    assert people.loc[retired, "age"].mean() > people.loc[~retired, "age"].mean() + 15


# --- behaviour ------------------------------------------------------------------------------


def test_onboarding_pd_rises_with_apr_and_limit_and_take_up_falls_with_apr():
    people = population("onboarding", 2_000, seed=5)
    pds = [
        behaviour.onboarding_default_probability(people, limit=5_000, apr=a)
        for a in (0.09, 0.19, 0.29)
    ]
    assert np.all(pds[0] < pds[1]) and np.all(pds[1] < pds[2])
    small, large = (
        behaviour.onboarding_default_probability(people, limit=limit, apr=0.19)
        for limit in (1_000, 10_000)
    )
    assert np.all(small < large)
    cheap, dear = (
        behaviour.onboarding_take_up_probability(people, limit=2_500, apr=a) for a in (0.09, 0.29)
    )
    assert np.all(cheap > dear)
    assert np.all(behaviour.onboarding_take_up_probability(people, limit=0, apr=0.0) == 0)


def test_collections_payment_rises_with_discount_and_contact():
    people = population("collections", 2_000, seed=5)
    paying = [
        behaviour.collections_payment_probability(people, channel="call", hour=12, discount=d)
        for d in behaviour.DISCOUNTS
    ]
    assert np.all(paying[0] < paying[1]) and np.all(paying[1] < paying[2])
    silent = behaviour.collections_payment_probability(people, channel="none", hour=0, discount=0)
    rested = people["contacts_last_7d"].to_numpy() == 0
    assert np.all(paying[0][rested] > silent[rested])
    # Workers answer in the evening, retirees in the morning.
    employment = people["employment_type"].to_numpy()
    morning, evening = (
        behaviour.collections_payment_probability(people, channel="call", hour=h, discount=0)
        for h in (9, 18)
    )
    assert np.all(evening[employment == "employed"] > morning[employment == "employed"])
    assert np.all(morning[employment == "retired"] > evening[employment == "retired"])


def test_cross_sell_products_appeal_to_different_customers():
    people = population("cross-sell", 5_000, seed=5)
    income = people["income"].to_numpy()
    take = {
        p: behaviour.cross_sell_take_up_probability(people, product=p)
        for p in ("none", *behaviour.CROSS_SELL_PRODUCTS)
    }
    assert np.all(take["none"] == 0)
    assert np.corrcoef(income, take["premium_card"])[0, 1] > 0.3
    assert np.corrcoef(people["debt_to_income"], take["loan"])[0, 1] > 0.3
    default = {
        p: behaviour.cross_sell_default_probability(people, product=p).mean()
        for p in behaviour.CROSS_SELL_PRODUCTS
    }
    assert default["savings"] == 0 and default["overdraft"] > default["loan"] > 0


@pytest.mark.parametrize("name", USE_CASES)
def test_sampled_outcomes_are_seeded_and_follow_the_probabilities(name):
    case = trained(name)
    people = case.population(20_000, seed=8)
    ids = np.random.default_rng(0).choice([a["id"] for a in case.actions], len(people))
    outcomes = case.outcomes(people, list(ids), seed=1)
    pd.testing.assert_frame_equal(outcomes, case.outcomes(people, list(ids), seed=1))
    actions = behaviour.action_frame(name, list(ids))
    truth = behaviour.outcome_probabilities(name, people, actions)
    if name == "collections":
        assert abs(outcomes["paid"].mean() - truth["payment"].mean()) < 0.01
        due = people["balance"] * (1 - actions["discount"])
        assert (outcomes["amount_recovered"] <= due + 0.01).all()
        assert (outcomes.loc[outcomes["paid"] == 0, "amount_recovered"] == 0).all()
    else:
        assert abs(outcomes["taken_up"].mean() - truth["take_up"].mean()) < 0.01
        assert (outcomes["defaulted"] <= outcomes["taken_up"]).all()
        assert ((outcomes["loss_amount"] > 0) == (outcomes["defaulted"] == 1)).all()


# --- the trained models ---------------------------------------------------------------------


@pytest.mark.parametrize("name", USE_CASES)
def test_models_discriminate_on_the_holdout_and_are_calibrated(name):
    for model_name, (_, content) in trained(name).models.items():
        metrics = content["metrics"]
        if content["output"]["type"] == "probability":
            assert metrics["auc"] > 0.6, model_name
            assert abs(metrics["calibration_in_the_large"]) < 0.02, model_name
        else:
            assert metrics["r2"] > 0.2 and metrics["rmse"] < 0.25, model_name
        assert len(content["reference_sample"]["rows"]) == training.REFERENCE_ROWS


def test_the_models_learned_the_response_to_the_action():
    people = population("onboarding", 2_000, seed=9)
    pd_model = runtime(trained("onboarding"), "onboarding-pd")
    take_up = runtime(trained("onboarding"), "onboarding-take-up")
    columns = {c: people[c].to_numpy() for c in people.columns}
    pds = [
        pd_model.predict(pd_model.frame({**columns, "limit": 5_000, "apr": a}))
        for a in (0.09, 0.29)
    ]
    assert pds[1].mean() > pds[0].mean() * 1.2
    takes = [
        take_up.predict(take_up.frame({**columns, "limit": 5_000, "apr": a})) for a in (0.09, 0.29)
    ]
    assert np.all(takes[0] > takes[1])

    people = population("collections", 2_000, seed=9)
    payment = runtime(trained("collections"), "collections-payment")
    columns = {c: people[c].to_numpy() for c in people.columns}
    pays = [
        payment.predict(payment.frame({**columns, "channel": "sms", "hour": 12, "discount": d}))
        for d in (0.0, 0.2)
    ]
    assert pays[1].mean() > pays[0].mean() + 0.05


@pytest.mark.parametrize("name", USE_CASES)
def test_same_seed_same_models(name):
    again = use_case(name, seed=7)
    people = population(name, 300, seed=2)
    columns = {c: people[c].to_numpy() for c in people.columns}
    for model_name, (_, content) in trained(name).models.items():
        assert again.models[model_name][1] == content
        first, second = runtime(trained(name), model_name), runtime(again, model_name)
        frame = first.frame({**columns, **_first_offer(trained(name), model_name)})
        np.testing.assert_array_equal(first.predict(frame), second.predict(frame))


# --- the limits bind but can be met ---------------------------------------------------------


@pytest.mark.parametrize("name", USE_CASES)
def test_every_model_gets_shap_reason_codes(name):
    case = trained(name)
    people = population(name, 200, seed=4)
    columns = {c: people[c].to_numpy() for c in people.columns}
    for prediction in case.predictions:
        model = runtime(case, prediction.model)
        frame = model.frame({**columns, **_first_offer(case, prediction.model)})
        explanation = explainer_for(model).explain(frame)  # raises unless additive
        reasons = principal_reasons(
            explanation=explanation,
            row=0,
            values=frame.iloc[0].to_dict(),
            catalog=model.reason_codes,
            exclude=prediction.action_inputs,
        )
        assert reasons and all(r["feature"] not in prediction.action_inputs for r in reasons)


# --- the limits bind but can be met ---------------------------------------------------------


@pytest.mark.parametrize("name", USE_CASES)
def test_limits_bind_yet_the_portfolio_problem_is_feasible(name):
    """Solve the LP relaxation on 1,500 customers with the limits sized for them.

    Scored by the engine's own decision function. Every limit either stops customers'
    unconstrained favourites or has a dual price at the optimum; the fallback alone meets
    every ``<=`` limit; and all limits together (onboarding's ``>=`` minimum of new
    accounts included) can be met.
    """
    case = trained(name)
    people = case.population(1_500, seed=21)
    function = compile_decision_function(
        strategy=case.strategy(dict.fromkeys(case.models, 1)),
        constraints=case.constraints(name, customers=len(people)),
        runtimes={(m, 1): runtime(case, m) for m in case.models},
    )
    result = function.evaluate({c: people[c].to_numpy() for c in people.columns})
    n, k = result.value.shape
    bounds = function.limit_bounds()  # "<=" form: ">=" limits negated
    fallback = function.fallback_index
    assert fallback is not None and result.eligible[:, fallback].all()
    favourite = result.choice
    assert np.all(favourite >= 0)
    rows = np.arange(n)
    for limit, usage, bound in zip(function.limits, result.usage, bounds, strict=True):
        if limit.sense == "<=":
            assert usage[:, fallback].sum() <= bound, limit.name
    breaks = [
        usage[rows, favourite].sum() > bound
        for usage, bound in zip(result.usage, bounds, strict=True)
    ]

    one_action_each = scipy.sparse.csr_matrix(
        (np.ones(n * k), (np.repeat(rows, k), np.arange(n * k))), shape=(n, n * k)
    )
    solved = linprog(
        -np.nan_to_num(result.value).ravel(),
        A_ub=result.usage.reshape(len(bounds), n * k),
        b_ub=bounds,
        A_eq=one_action_each,
        b_eq=np.ones(n),
        bounds=np.column_stack([np.zeros(n * k), result.eligible.ravel().astype(float)]),
        method="highs",
    )
    assert solved.status == 0, solved.message
    priced = np.abs(solved.ineqlin.marginals) > 1e-7
    for limit, broken, has_price in zip(function.limits, breaks, priced, strict=True):
        assert broken or has_price, f"{limit.name} never binds"
    assert -solved.fun < result.value[rows, favourite].sum()


# --- helpers --------------------------------------------------------------------------------


def runtime(case: UseCase, model_name: str) -> ModelRuntime:
    estimator, content = case.models[model_name]
    return ModelRuntime.from_content(key=f"{model_name} v1", estimator=estimator, content=content)


def _first_offer(case: UseCase, model_name: str) -> dict[str, Any]:
    prediction = next(p for p in case.predictions if p.model == model_name)
    attributes = case.actions[1]["attributes"]
    return {name: attributes[name] for name in prediction.action_inputs}
