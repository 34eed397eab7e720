"""Tests for SHAP reason codes per original feature (``decisions.engine.explain``).

Every supported pipeline shape is checked for additivity against ``ModelRuntime.margin``: shap
reads scikit-learn's private tree records for HistGradientBoosting, and this is the test that
catches a silent break on upgrade. No database: the engine is pure numpy.
"""

from __future__ import annotations

import json
import time
from functools import cache
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.compose import ColumnTransformer
from sklearn.decomposition import PCA
from sklearn.ensemble import (
    HistGradientBoostingClassifier,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, PoissonRegressor, Ridge, SGDClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import (
    MaxAbsScaler,
    MinMaxScaler,
    OneHotEncoder,
    OrdinalEncoder,
    PolynomialFeatures,
    RobustScaler,
    StandardScaler,
)
from threadpoolctl import threadpool_limits

from decisions.demo_portfolio import (
    REASON_CODES,
    SCHEMA,
    simulated_take_up,
    synthetic_customers,
    take_up_model,
)
from decisions.engine.explain import (
    AdditivityError,
    Explanation,
    FeatureExplainer,
    MissingReasonCode,
    UnsupportedModel,
    explainer_for,
    principal_reasons,
    principal_reasons_of_rows,
)
from decisions.engine.predictors import ModelRuntime

NUMERIC = ["income", "utilisation", "months_on_book", "delinquencies"]
PROBABILITY = {"type": "probability", "positive_class": 1}
REGRESSION = {"type": "regression"}
TOLERANCE = 1e-6


@pytest.fixture(autouse=True, scope="module")
def _one_openmp_thread() -> Any:
    """HistGradientBoosting and the forests use OpenMP; on a busy two-core runner its spinning
    threads turned a one-second module into minutes. Explanations do not depend on threads."""
    with threadpool_limits(limits=1, user_api="openmp"):
        yield


def _customers() -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    customers = synthetic_customers(1_200, seed=3)
    take_up = simulated_take_up(customers, seed=5)
    rng = np.random.default_rng(17)
    balance = (
        0.04 * customers["income"] * (0.5 + customers["utilisation"])
        + 150 * customers["delinquencies"]
        + customers["region"].map({"north": 300, "south": 0, "east": -200, "west": 100})
        + rng.normal(0, 200, len(customers))
    ).to_numpy()
    return customers, take_up, balance


def _runtime(
    key: str, estimator: Any, frame: pd.DataFrame, *, output: dict[str, Any]
) -> ModelRuntime:
    """A model version as the registry would load it, from a small content dict."""
    reference = frame.iloc[:200]
    content = {
        "schema": [f for f in SCHEMA if f["name"] in frame.columns],
        "output": output,
        "reference_sample": {
            "columns": list(reference.columns),
            "rows": reference.astype(object).values.tolist(),
        },
        "reason_codes": {k: v for k, v in REASON_CODES.items() if k in frame.columns},
    }
    return ModelRuntime.from_content(key=key, estimator=estimator, content=content)


def _demo() -> ModelRuntime:
    pipeline, content = take_up_model(rows=1500)
    return ModelRuntime.from_content(key="take-up v1", estimator=pipeline, content=content)


def _gradient_boosting() -> ModelRuntime:
    customers, take_up, _ = _customers()
    prepare = ColumnTransformer(
        [
            ("numeric", "passthrough", NUMERIC),
            ("region", OneHotEncoder(sparse_output=True, drop="first"), ["region"]),
        ]
    )
    model = Pipeline(
        [
            ("prepare", prepare),
            ("classify", HistGradientBoostingClassifier(max_iter=60, random_state=0)),
        ]
    ).fit(customers, take_up)
    return _runtime("take-up hgb v1", model, customers, output=PROBABILITY)


def _forest_regressor() -> ModelRuntime:
    customers, _, balance = _customers()
    # remainder="passthrough" puts region first in the output: the fold must follow indices.
    prepare = ColumnTransformer([("region", OrdinalEncoder(), ["region"])], remainder="passthrough")
    model = Pipeline(
        [
            ("prepare", prepare),
            ("regress", RandomForestRegressor(n_estimators=25, max_depth=6, random_state=0)),
        ]
    ).fit(customers, balance)
    return _runtime("balance rf v1", model, customers, output=REGRESSION)


def _forest_classifier() -> ModelRuntime:
    customers, take_up, _ = _customers()
    numeric = customers[NUMERIC]
    model = RandomForestClassifier(n_estimators=25, max_depth=5, random_state=0)
    return _runtime("take-up rf v1", model.fit(numeric, take_up), numeric, output=PROBABILITY)


def _logistic() -> ModelRuntime:
    customers, take_up, _ = _customers()
    numeric = customers[NUMERIC]
    model = LogisticRegression(max_iter=1000).fit(numeric, take_up)
    return _runtime("take-up plain v1", model, numeric, output=PROBABILITY)


def _ridge() -> ModelRuntime:
    customers, _, balance = _customers()
    holes = customers.copy()
    rng = np.random.default_rng(23)
    for column in ("income", "months_on_book"):
        holes.loc[rng.random(len(holes)) < 0.1, column] = np.nan
    numeric = Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())])
    prepare = ColumnTransformer(
        [("numeric", numeric, NUMERIC), ("region", OrdinalEncoder(), ["region"])]
    )
    model = Pipeline([("prepare", prepare), ("regress", Ridge(alpha=1.0))]).fit(holes, balance)
    return _runtime("balance ridge v1", model, holes, output=REGRESSION)


def _scalers_sparse_sgd() -> ModelRuntime:
    customers, take_up, _ = _customers()
    prepare = ColumnTransformer(
        [
            ("income", MinMaxScaler(), ["income"]),
            ("utilisation", RobustScaler(), ["utilisation"]),
            ("counts", MaxAbsScaler(), ["months_on_book", "delinquencies"]),
            (
                "region",
                OneHotEncoder(min_frequency=0.25, handle_unknown="infrequent_if_exist"),
                ["region"],
            ),
        ],
        sparse_threshold=1.0,  # keep the one-hot output sparse all the way to the model
    )
    model = Pipeline(
        [("prepare", prepare), ("classify", SGDClassifier(loss="log_loss", random_state=0))]
    ).fit(customers, take_up)
    return _runtime("take-up sgd v1", model, customers, output=PROBABILITY)


BUILDERS = {
    "demo": _demo,
    "hist-gradient-boosting": _gradient_boosting,
    "random-forest-regressor": _forest_regressor,
    "random-forest-classifier": _forest_classifier,
    "plain-logistic": _logistic,
    "ridge-imputer-scaler": _ridge,
    "scalers-sparse-sgd": _scalers_sparse_sgd,
}


@cache
def built(name: str) -> tuple[ModelRuntime, FeatureExplainer]:
    runtime = BUILDERS[name]()
    return runtime, explainer_for(runtime)


def fresh_rows(runtime: ModelRuntime, n: int = 150) -> pd.DataFrame:
    """Customers the model never saw, in the runtime's column order."""
    customers = synthetic_customers(n, seed=101)
    return runtime.frame({c: customers[c].to_numpy() for c in runtime.input_columns})


def dense(data: Any) -> np.ndarray:
    return np.asarray(data.toarray() if hasattr(data, "toarray") else data, dtype=float)


def assert_additive(explanation: Explanation) -> None:
    total = explanation.base_value + explanation.contributions.sum(axis=1)
    np.testing.assert_allclose(total, explanation.output, rtol=0, atol=TOLERANCE)


# --- additivity --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(BUILDERS))
def test_contributions_add_up_to_the_models_margin(name: str) -> None:
    runtime, explainer = built(name)
    for frame in (runtime.reference, fresh_rows(runtime), runtime.reference.iloc[:1]):
        explanation = explainer.explain(frame)
        assert_additive(explanation)
        np.testing.assert_allclose(explanation.output, runtime.margin(frame), rtol=1e-12, atol=1e-9)
        assert explanation.base_value.shape == (len(frame),)
        assert explanation.contributions.shape == (len(frame), len(runtime.input_columns))


@pytest.mark.parametrize("name", list(BUILDERS))
@settings(max_examples=15, deadline=None)
@given(data=st.data())
def test_additivity_holds_for_any_mix_of_reference_rows(name: str, data: st.DataObject) -> None:
    """Each feature's value comes from an independently drawn reference row: customers no
    model saw, but every value realistic (including the ridge sample's missing values)."""
    runtime, explainer = built(name)
    reference = runtime.reference
    n = len(reference)
    picks = data.draw(
        st.lists(
            st.lists(
                st.integers(0, n - 1),
                min_size=len(runtime.input_columns),
                max_size=len(runtime.input_columns),
            ),
            min_size=1,
            max_size=6,
        )
    )
    rows = np.asarray(picks)
    frame = runtime.frame(
        {c: reference[c].to_numpy()[rows[:, j]] for j, c in enumerate(runtime.input_columns)}
    )
    assert_additive(explainer.explain(frame))


def test_probability_trees_keep_the_probability_space_ranking() -> None:
    """Forests average class frequencies; their log-odds contributions are shap's exact
    probability-space values rescaled per row, so signs and order stay exact."""
    import shap

    runtime, explainer = built("random-forest-classifier")
    frame = runtime.reference.iloc[:20]
    explanation = explainer.explain(frame)
    tree = shap.TreeExplainer(runtime.estimator)
    in_probability = tree.shap_values(frame.to_numpy(), check_additivity=False)[..., 1]
    moved = np.abs(in_probability.sum(axis=1)) > 1e-12
    ratio = explanation.contributions[moved] / in_probability[moved]
    finite = np.abs(in_probability[moved]) > 1e-12
    per_row = np.where(finite, ratio, np.nan)
    assert np.all(np.nanmin(per_row, axis=1) > 0)
    np.testing.assert_allclose(np.nanmin(per_row, axis=1), np.nanmax(per_row, axis=1), rtol=1e-9)


def test_positive_class_first_flips_the_explanation() -> None:
    customers, take_up, _ = _customers()
    numeric = customers[NUMERIC]
    model = LogisticRegression(max_iter=1000).fit(numeric, take_up)
    yes = explainer_for(_runtime("yes", model, numeric, output=PROBABILITY))
    no = explainer_for(
        _runtime("no", model, numeric, output={"type": "probability", "positive_class": 0})
    )
    frame = numeric.iloc[:50]
    a, b = yes.explain(frame), no.explain(frame)
    assert_additive(b)
    np.testing.assert_allclose(b.contributions, -a.contributions, atol=1e-12)
    np.testing.assert_allclose(b.base_value, -a.base_value, atol=1e-12)


# --- per original feature ----------------------------------------------------------------------


def test_one_hot_columns_fold_into_their_feature() -> None:
    runtime, explainer = built("demo")
    frame = runtime.reference.iloc[:40]
    explanation = explainer.explain(frame)
    assert explanation.features == runtime.input_columns
    assert explanation.contributions.shape == (40, len(runtime.input_columns))

    # Independently: interventional linear SHAP of the four region_* columns, summed.
    prepare, model = runtime.estimator[:-1], runtime.estimator[-1]
    transformed = dense(prepare.transform(frame))
    background = dense(prepare.transform(runtime.reference))
    names = list(prepare.get_feature_names_out())
    region = [i for i, n in enumerate(names) if n.startswith("region__")]
    assert len(region) == 4
    expected = ((transformed - background.mean(axis=0)) * model.coef_[0])[:, region].sum(axis=1)
    got = explanation.contributions[:, runtime.input_columns.index("region")]
    np.testing.assert_allclose(got, expected, atol=1e-10)


def test_a_feature_at_the_background_mean_contributes_nothing() -> None:
    for name in ("plain-logistic", "demo"):
        runtime, explainer = built(name)
        row = runtime.reference.iloc[[7]].copy()
        row["income"] = runtime.reference["income"].mean()
        explanation = explainer.explain(row)
        assert abs(explanation.contributions[0, runtime.input_columns.index("income")]) < 1e-12
        reasons = principal_reasons(
            explanation=explanation,
            row=0,
            values=row.iloc[0].to_dict(),
            catalog=runtime.reason_codes,
            limit=10,
        )
        assert "income" not in {r["feature"] for r in reasons}
        assert len(reasons) == len(runtime.input_columns) - 1


def test_columns_in_another_order_are_explained_in_model_order() -> None:
    runtime, explainer = built("plain-logistic")
    frame = runtime.reference.iloc[:10]
    shuffled = frame[list(reversed(frame.columns))]
    np.testing.assert_allclose(
        explainer.explain(shuffled).contributions, explainer.explain(frame).contributions
    )


# --- principal reasons -------------------------------------------------------------------------


def _reasons(name: str, row: int, **options: Any) -> tuple[list[dict[str, Any]], np.ndarray]:
    runtime, explainer = built(name)
    frame = runtime.reference.iloc[:30]
    explanation = explainer.explain(frame)
    reasons = principal_reasons(
        explanation=explanation,
        row=row,
        values=frame.iloc[row].to_dict(),
        catalog=runtime.reason_codes,
        **options,
    )
    return reasons, explanation.contributions[row]


@pytest.mark.parametrize("name", ["demo", "hist-gradient-boosting", "random-forest-regressor"])
@pytest.mark.parametrize("row", [0, 3, 11, 29])
def test_reasons_are_the_largest_contributions_with_catalog_codes(name: str, row: int) -> None:
    runtime, _ = built(name)
    reasons, contributions = _reasons(name, row)
    assert 1 <= len(reasons) <= 4
    sizes = [abs(r["contribution"]) for r in reasons]
    assert sizes == sorted(sizes, reverse=True)
    by_feature = dict(zip(runtime.input_columns, contributions, strict=True))
    threshold = min(sizes)
    others = [abs(c) for f, c in by_feature.items() if f not in {r["feature"] for r in reasons}]
    assert all(size <= threshold for size in others)
    for reason in reasons:
        assert set(reason) == {"code", "text", "feature", "value", "contribution"}
        assert reason["code"] == REASON_CODES[reason["feature"]]["code"]
        assert reason["text"] == REASON_CODES[reason["feature"]]["text"]
        assert reason["contribution"] == by_feature[reason["feature"]]
        assert reason["value"] == runtime.reference.iloc[row][reason["feature"]]
    json.dumps(reasons)  # goes into the decision log as is


@pytest.mark.parametrize("name", ["demo", "hist-gradient-boosting"])
@pytest.mark.parametrize("row", range(12))
def test_raise_names_only_what_pushed_the_margin_up(name: str, row: int) -> None:
    raised, contributions = _reasons(name, row, direction="raise")
    values = [r["contribution"] for r in raised]
    assert all(v > 0 for v in values)
    assert values == sorted(values, reverse=True)
    assert len(raised) == min(4, int((contributions > 1e-9).sum()))
    lowered, _ = _reasons(name, row, direction="lower")
    values = [r["contribution"] for r in lowered]
    assert all(v < 0 for v in values)
    assert values == sorted(values)


def test_excluded_features_are_never_reasons_nor_need_a_code() -> None:
    runtime, explainer = built("demo")
    catalog = {k: v for k, v in runtime.reason_codes.items() if k != "months_on_book"}
    explanation = explainer.explain(runtime.reference.iloc[:30])
    for row in range(30):
        reasons = principal_reasons(
            explanation=explanation,
            row=row,
            values=runtime.reference.iloc[row].to_dict(),
            catalog=catalog,
            exclude={"months_on_book", "income", "apr"},
            limit=5,
        )
        assert {r["feature"] for r in reasons} <= {"utilisation", "delinquencies", "region"}


def test_only_model_features_are_named() -> None:
    runtime, explainer = built("plain-logistic")
    frame = runtime.reference.iloc[:5]
    catalog = {**REASON_CODES, "limit": {"code": "AX01", "text": "Offered limit"}}
    for row in range(5):
        reasons = principal_reasons(
            explanation=explainer.explain(frame),
            row=row,
            values={**frame.iloc[row].to_dict(), "region": "north", "limit": 3000},
            catalog=catalog,
            limit=10,
        )
        assert {r["feature"] for r in reasons} <= set(NUMERIC)


def test_a_feature_missing_from_the_catalog_is_a_clear_error() -> None:
    runtime, explainer = built("demo")
    catalog = {k: v for k, v in runtime.reason_codes.items() if k != "region"}
    with pytest.raises(MissingReasonCode, match="region") as raised:
        principal_reasons(
            explanation=explainer.explain(runtime.reference.iloc[:1]),
            row=0,
            values=runtime.reference.iloc[0].to_dict(),
            catalog=catalog,
        )
    assert isinstance(raised.value, KeyError)


def test_values_are_json_ready_python_scalars() -> None:
    runtime, explainer = built("demo")
    frame = runtime.reference.iloc[:1]
    values = {c: frame[c].to_numpy()[0] for c in runtime.input_columns}  # numpy scalars
    reasons = principal_reasons(
        explanation=explainer.explain(frame), row=0, values=values, catalog=REASON_CODES, limit=5
    )
    for reason in reasons:
        assert type(reason["value"]) in (float, str)
        assert type(reason["contribution"]) is float
    assert json.loads(json.dumps(reasons)) == reasons


# --- refusing what cannot be explained ---------------------------------------------------------


@pytest.mark.parametrize(
    ("prepare", "culprit"),
    [
        (PCA(n_components=2), "PCA"),
        (
            ColumnTransformer([("poly", PolynomialFeatures(degree=2), NUMERIC)], remainder="drop"),
            "PolynomialFeatures",
        ),
        (
            ColumnTransformer(
                [("numeric", SimpleImputer(add_indicator=True), NUMERIC)], remainder="drop"
            ),
            "add_indicator",
        ),
    ],
)
def test_models_that_mix_columns_are_refused(prepare: Any, culprit: str) -> None:
    customers, take_up, _ = _customers()
    numeric = customers[NUMERIC]
    model = Pipeline([("prepare", prepare), ("classify", LogisticRegression(max_iter=500))])
    runtime = _runtime("mixed v1", model.fit(numeric, take_up), numeric, output=PROBABILITY)
    with pytest.raises(UnsupportedModel, match=culprit) as raised:
        explainer_for(runtime)
    assert isinstance(raised.value, ValueError)
    assert "prepare" in str(raised.value)


def test_a_log_link_model_is_refused() -> None:
    customers, _, balance = _customers()
    numeric = customers[NUMERIC]
    model = Pipeline([("scale", StandardScaler()), ("regress", PoissonRegressor())])
    model.fit(numeric, np.abs(balance) / 1000)
    with pytest.raises(UnsupportedModel, match="PoissonRegressor"):
        explainer_for(_runtime("poisson v1", model, numeric, output=REGRESSION))


def test_explanations_that_do_not_add_up_are_refused() -> None:
    runtime, _ = built("plain-logistic")
    broken = FeatureExplainer(
        runtime=runtime,
        preprocess=[],
        model=runtime.estimator,
        origins=np.arange(len(runtime.input_columns)),
        attribution=lambda rows, output: (np.zeros(len(rows)), np.zeros_like(rows)),
        method="broken",
    )
    with pytest.raises(AdditivityError, match="take-up plain v1"):
        broken.explain(runtime.reference.iloc[:3])


# --- real-time cost ----------------------------------------------------------------------------


def test_one_customer_is_explained_in_milliseconds() -> None:
    """The real-time path: measured ~1.3 ms here; the bound leaves room for slow CI."""
    runtime, explainer = built("demo")
    row = fresh_rows(runtime, 1)
    timings = []
    for _ in range(30):
        start = time.perf_counter()
        explainer.explain(row)
        timings.append(time.perf_counter() - start)
    assert float(np.median(timings)) < 0.025


def _reference_reasons(
    contributions: np.ndarray, features: list[str], direction: str, limit: int
) -> list[tuple[str, float]]:
    """The ranking rule in plain Python: largest score first, ties in column order."""
    score = {"raise": contributions, "lower": -contributions, "magnitude": np.abs(contributions)}
    floor = 1e-9 * max(1.0, float(np.abs(contributions).sum()))
    ranked = sorted(range(len(features)), key=lambda i: (-score[direction][i], i))
    kept = [i for i in ranked if score[direction][i] > floor][:limit]
    return [(features[i], float(contributions[i])) for i in kept]


@settings(max_examples=60, deadline=None)
@given(
    grid=st.lists(
        st.lists(st.sampled_from([-2.0, -1.0, -1e-12, 0.0, 1e-12, 1.0, 2.0, 0.5]), min_size=5,
                 max_size=5),
        min_size=1,
        max_size=12,
    ),
    directions=st.lists(st.sampled_from(["raise", "lower", "magnitude"]), min_size=12,
                        max_size=12),
    limit=st.integers(0, 6),
    adverse=st.lists(st.booleans(), min_size=12, max_size=12),
)  # fmt: skip
def test_reasons_of_many_rows_rank_each_row_as_one_row_does(
    grid: list[list[float]], directions: list[str], limit: int, adverse: list[bool]
) -> None:
    # Ties (equal scores) and float noise around zero are where a batched sort could differ.
    features = ["a", "b", "c", "d", "e"]
    contributions = np.array(grid)
    n = len(grid)
    explanation = Explanation(
        base_value=np.zeros(n),
        contributions=contributions,
        features=features,
        output=contributions.sum(axis=1),
    )
    catalog = {f: {"code": f.upper(), "text": f"feature {f} too high"} for f in features}
    for f in ("a", "c"):  # a neutral name for some; the others keep their text
        catalog[f]["factor"] = f"feature {f}"
    values = {f: [f"{f}{row}" for row in range(n)] for f in features}
    rows = np.arange(n)[::-1]  # any order of rows
    batched = principal_reasons_of_rows(
        explanation=explanation,
        rows=rows,
        values={f: [values[f][r] for r in rows] for f in features},
        catalog=catalog,
        exclude={"e"},
        directions=directions[:n],
        limit=limit,
        adverse=adverse[:n],
    )
    for j, row in enumerate(rows):
        single = principal_reasons(
            explanation=explanation,
            row=int(row),
            values={f: values[f][row] for f in features},
            catalog=catalog,
            exclude={"e"},
            direction=directions[j],
            limit=limit,
            adverse=adverse[j],
        )
        assert batched[j] == single
        for reason in single:
            neutral = not adverse[j] and reason["feature"] in ("a", "c")
            too_high = f"feature {reason['feature']}" + ("" if neutral else " too high")
            assert reason["text"] == too_high
        expected = _reference_reasons(contributions[row, :4], features[:4], directions[j], limit)
        # The floor counts every contribution, the excluded one's too.
        floor = 1e-9 * max(1.0, float(np.abs(contributions[row]).sum()))
        expected = [(f, c) for f, c in expected if abs(c) > floor]
        assert [(r["feature"], r["contribution"]) for r in single] == expected
        assert all(r["value"] == f"{r['feature']}{row}" for r in single)
