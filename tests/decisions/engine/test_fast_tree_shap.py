"""Tree SHAP by table lookup (``decisions.engine.fast_tree_shap``) against shap's own values.

The tables replace shap's C++ walk for HistGradientBoosting models wherever decisions are
explained, so every reason code of an optimisation run and of a real-time decision comes
from them. They must give shap's numbers (to rounding), on rows that sit exactly on a
split threshold too, for classifiers and regressors, with one row or thousands, and hand
back to shap where they do not apply.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
import shap
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder
from threadpoolctl import threadpool_limits

from decisions.engine import fast_tree_shap
from decisions.engine.explain import explainer_for
from decisions.engine.fast_tree_shap import compile_tree_shap
from decisions.engine.predictors import ModelRuntime


@pytest.fixture(autouse=True, scope="module")
def _one_openmp_thread() -> Any:
    with threadpool_limits(limits=1, user_api="openmp"):
        yield


def _data(n: int = 3_000, seed: int = 4) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = np.column_stack(
        [
            rng.normal(size=n),
            rng.uniform(0, 1, size=n),
            rng.integers(0, 5, size=n).astype(float),  # few distinct values: shared thresholds
            rng.integers(0, 2, size=n).astype(float),  # a one-hot column
            rng.normal(size=n) * 100,
            rng.normal(size=n),  # noise the trees rarely use
        ]
    )
    logit = 1.5 * x[:, 0] - 2 * x[:, 1] + 0.5 * x[:, 2] * x[:, 3] + 0.01 * x[:, 4]
    label = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    value = logit + rng.normal(size=n)
    return x, label, value


def _classifier(**kwargs: Any) -> tuple[HistGradientBoostingClassifier, np.ndarray]:
    x, label, _ = _data()
    params = {"max_iter": 60, "max_leaf_nodes": 15, "random_state": 0} | kwargs
    return HistGradientBoostingClassifier(**params).fit(x, label), x


def _regressor(**kwargs: Any) -> tuple[HistGradientBoostingRegressor, np.ndarray]:
    x, _, value = _data()
    params = {"max_iter": 40, "max_leaf_nodes": 31, "random_state": 0} | kwargs
    return HistGradientBoostingRegressor(**params).fit(x, value), x


def _shap(model: Any, rows: np.ndarray) -> tuple[float, np.ndarray]:
    explainer = shap.TreeExplainer(
        model, model_output="raw", feature_perturbation="tree_path_dependent"
    )
    values = np.asarray(explainer.shap_values(rows, check_additivity=False), dtype=np.float64)
    return float(np.ravel(explainer.expected_value)[0]), values.reshape(len(rows), -1)


def _threshold_rows(model: Any, rows: np.ndarray) -> np.ndarray:
    """Rows whose values sit exactly on split thresholds (x <= t goes left), and beyond the
    smallest and largest threshold: the cells' edges."""
    rng = np.random.default_rng(8)
    out = rows[: len(rows) // 2].copy()
    nodes = np.concatenate([p[0].nodes for p in model._predictors])
    splits = nodes[~nodes["is_leaf"].astype(bool)]
    for i in range(len(out)):
        for _ in range(3):
            node = splits[rng.integers(len(splits))]
            out[i, node["feature_idx"]] = node["num_threshold"]
    out[:5] = rows.min(axis=0) - 10
    out[5:10] = rows.max(axis=0) + 10
    return out


@pytest.mark.parametrize("make", [_classifier, _regressor], ids=["classifier", "regressor"])
def test_tables_give_shap_values_on_rows_and_thresholds(make: Any) -> None:
    model, rows = make()
    tables = compile_tree_shap(model)
    assert tables is not None
    for sample in (rows, _threshold_rows(model, rows)):
        base, expected = _shap(model, sample)
        values = tables.shap_values(sample)
        assert tables.base == pytest.approx(base, abs=1e-12)
        assert np.max(np.abs(values - expected)) <= 1e-11
        # Additive: base plus contributions is the raw score scikit-learn computes.
        raw = model._raw_predict(sample).reshape(-1)
        assert np.allclose(tables.base + values.sum(axis=1), raw, rtol=0, atol=1e-10)


def test_one_row_at_a_time_gives_the_batch_bits() -> None:
    model, rows = _classifier()
    tables = compile_tree_shap(model)
    assert tables is not None
    batch = tables.shap_values(rows[:300])
    one_by_one = np.vstack([tables.shap_values(rows[i : i + 1]) for i in range(300)])
    assert np.array_equal(batch, one_by_one)
    # Across the block boundary of the vectorised steps too.
    big = np.concatenate([rows] * 2)[: fast_tree_shap.BLOCK_ROWS + 7]
    assert np.array_equal(tables.shap_values(big)[-7:], tables.shap_values(big[-7:]))


@settings(max_examples=25, deadline=None)
@given(
    depth=st.integers(min_value=2, max_value=40),
    leaf=st.integers(min_value=5, max_value=200),
    seed=st.integers(min_value=0, max_value=10_000),
)
def test_tables_match_shap_for_any_tree_shape(depth: int, leaf: int, seed: int) -> None:
    x, label, _ = _data(n=800, seed=seed)
    model = HistGradientBoostingClassifier(
        max_iter=8, max_leaf_nodes=depth, min_samples_leaf=leaf, random_state=seed
    ).fit(x, label)
    tables = compile_tree_shap(model)
    assert tables is not None
    base, expected = _shap(model, x[:100])
    assert tables.base == pytest.approx(base, abs=1e-12)
    assert np.max(np.abs(tables.shap_values(x[:100]) - expected)) <= 1e-11


def test_models_outside_the_tables_are_left_to_shap(monkeypatch: pytest.MonkeyPatch) -> None:
    x, label, _ = _data(n=600)
    categorical = HistGradientBoostingClassifier(
        max_iter=5, categorical_features=[2], random_state=0
    ).fit(x, label)
    assert compile_tree_shap(categorical) is None
    assert compile_tree_shap(object()) is None
    model, _ = _classifier(max_iter=5)
    monkeypatch.setattr(fast_tree_shap, "MAX_PATH_FEATURES", 1)
    assert compile_tree_shap(model) is None
    monkeypatch.undo()
    monkeypatch.setattr(fast_tree_shap, "MAX_TABLE_VALUES", 10)
    assert compile_tree_shap(model) is None


def test_a_model_of_single_leaf_trees_scores_its_base() -> None:
    x, label, _ = _data(n=200)
    model = HistGradientBoostingClassifier(max_iter=3, min_samples_leaf=200).fit(x, label)
    tables = compile_tree_shap(model)
    assert tables is not None
    assert np.array_equal(tables.shap_values(x[:4]), np.zeros((4, x.shape[1])))
    assert tables.base == pytest.approx(float(model._raw_predict(x[:1])[0, 0]), abs=1e-12)


def _pipeline_runtime(missing: bool) -> tuple[ModelRuntime, pd.DataFrame]:
    x, label, _ = _data(n=2_000)
    frame = pd.DataFrame(x[:, :5], columns=["a", "b", "c", "d", "e"])
    frame["region"] = np.where(x[:, 5] > 0, "north", "south")
    if missing:
        frame.loc[frame.index[::7], "b"] = np.nan
    pipeline = Pipeline(
        [
            (
                "prepare",
                ColumnTransformer(
                    [
                        ("numeric", "passthrough", ["a", "b", "c", "d", "e"]),
                        ("region", OneHotEncoder(sparse_output=False), ["region"]),
                    ]
                ),
            ),
            ("model", HistGradientBoostingClassifier(max_iter=40, random_state=0)),
        ]
    ).fit(frame, label)
    schema = [{"name": c, "type": "numeric", "required": True} for c in "abcde"]
    schema.append({"name": "region", "type": "categorical", "categories": ["north", "south"]})
    reference = frame.iloc[:200]
    content = {
        "schema": schema,
        "output": {"type": "probability", "positive_class": 1},
        "reference_sample": {
            "columns": list(reference.columns),
            "rows": reference.astype(object).values.tolist(),
        },
        "reason_codes": {c: {"code": c.upper(), "text": c} for c in frame.columns},
    }
    runtime = ModelRuntime.from_content(key="hgb v1", estimator=pipeline, content=content)
    return runtime, frame


def test_the_serving_explainer_uses_the_tables_and_agrees_with_shap() -> None:
    runtime, frame = _pipeline_runtime(missing=False)
    served = explainer_for(runtime, tables=True)
    checked = explainer_for(runtime)
    assert served.uses_tables and not checked.uses_tables
    fast, slow = served.explain(frame), checked.explain(frame)
    assert np.allclose(fast.contributions, slow.contributions, rtol=0, atol=1e-10)
    assert np.allclose(fast.base_value, slow.base_value, rtol=0, atol=1e-12)
    assert np.allclose(fast.output, slow.output, rtol=0, atol=1e-12)


def test_rows_with_missing_values_are_explained_by_shap() -> None:
    runtime, frame = _pipeline_runtime(missing=True)
    served = explainer_for(runtime, tables=True)
    checked = explainer_for(runtime)
    # Trusted on the reference's complete rows; a row with a missing value goes to shap.
    assert served.uses_tables
    rows = frame.iloc[:50]
    assert rows["b"].isna().any() and rows["b"].notna().any()
    fast, slow = served.explain(rows), checked.explain(rows)
    assert np.allclose(fast.contributions, slow.contributions, rtol=0, atol=1e-10)
    assert np.allclose(fast.base_value, slow.base_value, rtol=0, atol=1e-12)
    gap = rows["b"].isna().to_numpy()
    # Each row gets what it gets alone: shap's exact bits where a value is missing.
    alone = [served.explain(rows.iloc[[i]]).contributions[0] for i in range(len(rows))]
    assert np.array_equal(np.vstack(alone), fast.contributions)
    assert np.array_equal(fast.contributions[gap], slow.contributions[gap])


def test_tables_that_disagree_with_shap_are_not_used(monkeypatch, caplog):
    import dataclasses

    runtime, frame = _pipeline_runtime(missing=False)
    honest = fast_tree_shap.compile_tree_shap

    def off_by_a_little(model):
        tables = honest(model)
        return dataclasses.replace(tables, values=tables.values * (1 + 1e-6))

    monkeypatch.setattr(fast_tree_shap, "compile_tree_shap", off_by_a_little)
    with caplog.at_level("WARNING", logger="decisions.engine.explain"):
        served = explainer_for(runtime, tables=True)
    assert not served.uses_tables
    assert "differ from shap" in caplog.text
    slow = explainer_for(runtime).explain(frame)
    assert np.array_equal(served.explain(frame).contributions, slow.contributions)
