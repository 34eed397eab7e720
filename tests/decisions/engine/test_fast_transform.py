"""The NumPy replay of preprocessing equals scikit-learn's, or is not used at all."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.compose import ColumnTransformer
from sklearn.decomposition import PCA
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import (
    MaxAbsScaler,
    MinMaxScaler,
    OneHotEncoder,
    OrdinalEncoder,
    RobustScaler,
    StandardScaler,
)

from decisions.engine.fast_transform import compile_fast_transform
from decisions.engine.predictors import ModelRuntime

REGIONS = ["north", "south", "east", "west"]


def frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "income": rng.lognormal(10.5, 0.5, n),
            "age": rng.integers(18, 90, n).astype(float),
            "score": rng.normal(650, 80, n),
            "region": rng.choice(REGIONS, n).astype(object),
            "tier": rng.choice(["a", "b", "c"], n).astype(object),
        }
    )


def target(data: pd.DataFrame) -> np.ndarray:
    return ((data["score"] > 650) ^ (data["region"] == "east")).astype(int).to_numpy()


PIPELINES = {
    "scalers+onehot+logistic": lambda: Pipeline(
        [
            (
                "prepare",
                ColumnTransformer(
                    [
                        ("std", StandardScaler(), ["income"]),
                        ("minmax", MinMaxScaler(clip=True), ["age"]),
                        ("robust", RobustScaler(), ["score"]),
                        ("region", OneHotEncoder(handle_unknown="ignore"), ["region"]),
                        ("tier", OneHotEncoder(drop="first", sparse_output=False), ["tier"]),
                    ]
                ),
            ),
            ("model", LogisticRegression(max_iter=1000)),
        ]
    ),
    "imputer-chain+ordinal+trees": lambda: Pipeline(
        [
            (
                "prepare",
                ColumnTransformer(
                    [
                        (
                            "num",
                            make_pipeline(SimpleImputer(strategy="median"), MaxAbsScaler()),
                            ["income", "age", "score"],
                        ),
                        ("cat", OrdinalEncoder(), ["region", "tier"]),
                    ],
                    remainder="drop",
                ),
            ),
            ("model", HistGradientBoostingClassifier(max_iter=20)),
        ]
    ),
    "passthrough+ridge": lambda: Pipeline(
        [
            (
                "prepare",
                ColumnTransformer([("num", "passthrough", ["income", "score"])], remainder="drop"),
            ),
            ("model", Ridge()),
        ]
    ),
}


def runtime_for(estimator, data, output: str) -> ModelRuntime:
    schema = [
        {"name": c, "type": "categorical" if data[c].dtype == object else "numeric"}
        for c in data.columns
    ]
    content = {
        "schema": schema,
        "output": {"type": output, "positive_class": 1}
        if output == "probability"
        else {"type": output},
        "reference_sample": {
            "columns": list(data.columns),
            "rows": data.iloc[:200].astype(object).values.tolist(),
        },
        "reason_codes": {},
    }
    return ModelRuntime.from_content(key="m v1", estimator=estimator, content=content)


@pytest.mark.parametrize("name", sorted(PIPELINES))
def test_replay_is_used_and_matches_scikit_learn(name):
    data = frame(600, seed=1)
    estimator = PIPELINES[name]().fit(data, target(data) if "ridge" not in name else data["score"])
    output = "regression" if "ridge" in name else "probability"
    runtime = runtime_for(estimator, data, output)
    assert runtime.fast is not None
    fresh = frame(300, seed=2)
    columns = {c: fresh[c].to_numpy() for c in fresh.columns}
    np.testing.assert_allclose(
        runtime.predict_columns(columns), runtime.predict(fresh), rtol=1e-12, atol=1e-12
    )


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(1, 30))
def test_replay_equals_scikit_learn_on_random_rows(seed, n):
    data = frame(400, seed=3)
    estimator = PIPELINES["scalers+onehot+logistic"]().fit(data, target(data))
    fast = compile_fast_transform(estimator, list(data.columns), data)
    assert fast is not None
    rows = frame(n, seed=seed)
    rows.loc[rows.index[0], "region"] = "atlantis"  # unknown categories: all zeros, like sklearn
    expected = estimator[:-1].transform(rows)
    expected = expected.toarray() if hasattr(expected, "toarray") else expected
    replayed = fast.transform({c: rows[c].to_numpy() for c in rows.columns}, n)
    np.testing.assert_allclose(replayed, expected, rtol=1e-12, atol=1e-12)


def test_unsupported_preprocessing_falls_back_to_scikit_learn():
    data = frame(300, seed=4)
    estimator = Pipeline(
        [
            ("prepare", ColumnTransformer([("mix", PCA(n_components=2), ["income", "score"])])),
            ("model", LogisticRegression()),
        ]
    ).fit(data, target(data))
    assert compile_fast_transform(estimator, list(data.columns), data) is None
    runtime = runtime_for(estimator, data, "probability")
    assert runtime.fast is None
    columns = {c: data[c].to_numpy() for c in data.columns}
    np.testing.assert_allclose(runtime.predict_columns(columns), runtime.predict(data))


def test_every_simulator_model_gets_the_fast_path():
    from decisions.simulator.use_cases import USE_CASES, use_case

    for name in USE_CASES:
        for model_name, (estimator, content) in use_case(name).models.items():
            runtime = ModelRuntime.from_content(
                key=model_name, estimator=estimator, content=content
            )
            assert runtime.fast is not None, model_name


def test_a_large_batch_walked_on_several_threads_equals_scikit_learn_to_the_bit(monkeypatch):
    from decisions.engine import fast_transform

    data = frame(600, seed=5)
    estimator = PIPELINES["imputer-chain+ordinal+trees"]().fit(data, target(data))
    runtime = runtime_for(estimator, data, "probability")
    trees = runtime.fast.trees
    assert trees is not None
    rows = frame(5_003, seed=6)  # not a multiple of the threads: uneven slices
    rows.loc[rows.index[::7], "score"] = np.nan  # missing values take the trained side
    matrix = runtime.fast.transform({c: rows[c].to_numpy() for c in rows.columns}, len(rows))
    alone = trees.raw(matrix)  # below PARALLEL_ROWS: one thread
    monkeypatch.setattr(fast_transform, "PARALLEL_ROWS", 1_000)
    monkeypatch.setattr(fast_transform, "_cores", lambda: 3)
    threaded = trees.raw(matrix)
    assert np.array_equal(threaded, alone)
    np.testing.assert_array_equal(trees.predict_proba(matrix), estimator[-1].predict_proba(matrix))


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(1, 40))
def test_a_logistic_models_replay_gives_scikit_learns_probabilities_to_the_bit(seed, n):
    data = frame(400, seed=7)
    estimator = PIPELINES["scalers+onehot+logistic"]().fit(data, target(data))
    runtime = runtime_for(estimator, data, "probability")
    assert runtime.fast.linear is not None and runtime.fast.predictor is runtime.fast.linear
    rows = frame(n, seed=seed)
    matrix = runtime.fast.transform({c: rows[c].to_numpy() for c in rows.columns}, n)
    np.testing.assert_array_equal(
        runtime.fast.linear.predict_proba(matrix), estimator[-1].predict_proba(matrix)
    )
    np.testing.assert_array_equal(
        runtime.predict_columns({c: rows[c].to_numpy() for c in rows.columns}),
        runtime.predict(rows),
    )


def test_only_a_binary_logistic_regression_gets_the_linear_replay():
    data = frame(400, seed=8)
    three = np.digitize(data["score"].to_numpy(), np.quantile(data["score"], [0.33, 0.66]))
    multiclass = PIPELINES["scalers+onehot+logistic"]().fit(data, three)
    fast = compile_fast_transform(multiclass, list(data.columns), data)
    assert fast is not None and fast.linear is None and fast.predictor is fast.final
    ridge = PIPELINES["passthrough+ridge"]().fit(data, data["score"])
    assert compile_fast_transform(ridge, list(data.columns), data).linear is None
