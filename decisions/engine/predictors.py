"""A loaded model version, ready to score arrays: the engine's only view of a model.

``ModelRuntime`` holds the estimator with what the registry sealed about it (schema,
output, reason codes, reference sample) and builds the pandas frame the estimator was
fitted on from plain column arrays. No Django here: the registry loads the estimator
(``decisions.model_artifacts``) and hands it over.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from decisions.engine.fast_transform import FastTransform, compile_fast_transform


@dataclass(frozen=True, eq=False)
class ModelRuntime:
    key: str
    """``name vN``: how logs and explanations name the model version."""
    estimator: Any
    schema: list[dict[str, Any]]
    output_type: str
    """``probability`` (of ``positive_class``) or ``regression``."""
    input_columns: list[str]
    """The estimator's own column order (``feature_names_in_``)."""
    reason_codes: dict[str, dict[str, str]]
    reference: pd.DataFrame = field(repr=False)
    positive_index: int | None = None
    content_hash: str = ""
    fast: FastTransform | None = field(default=None, repr=False)
    """A NumPy replay of the preprocessing, when one reproduces scikit-learn exactly."""

    @classmethod
    def from_content(
        cls, *, key: str, estimator: Any, content: Mapping[str, Any], content_hash: str = ""
    ) -> ModelRuntime:
        """Build from a model version's sealed content and its loaded estimator."""
        output = content["output"]
        positive_index = None
        if output["type"] == "probability":
            classes = [c.item() if hasattr(c, "item") else c for c in estimator.classes_]
            positive_index = classes.index(output["positive_class"])
        columns = [str(c) for c in estimator.feature_names_in_]
        schema = list(content["schema"])
        sample = content["reference_sample"]
        reference = frame_from_columns(
            schema,
            columns,
            {
                c: np.asarray([row[i] for row in sample["rows"]], dtype=object)
                for i, c in enumerate(sample["columns"])
            },
        )
        runtime = cls(
            key=key,
            estimator=estimator,
            schema=schema,
            output_type=output["type"],
            input_columns=columns,
            reason_codes=dict(content["reason_codes"]),
            reference=reference,
            positive_index=positive_index,
            content_hash=content_hash,
        )
        fast = compile_fast_transform(estimator, columns, reference)
        if fast is None:
            return runtime
        with_fast = replace(runtime, fast=fast)
        columns_of_reference = {c: reference[c].to_numpy() for c in columns}
        if not np.allclose(
            with_fast.predict_columns(columns_of_reference),
            runtime.predict(reference),
            rtol=1e-12,
            atol=1e-12,
        ):
            return runtime
        return with_fast

    @property
    def feature_types(self) -> dict[str, str]:
        return {f["name"]: f["type"] for f in self.schema}

    def frame(self, columns: Mapping[str, Any]) -> pd.DataFrame:
        """The estimator's input frame from arrays (or scalars) keyed by feature name."""
        return frame_from_columns(self.schema, self.input_columns, columns)

    def transformed(self, columns: Mapping[str, Any]) -> np.ndarray | None:
        """The final estimator's input matrix by the NumPy replay, or None without one."""
        if self.fast is None:
            return None
        return self.fast.transform(columns, _length(columns))

    def predict_columns(self, columns: Mapping[str, Any]) -> np.ndarray:
        """``predict`` from column arrays, skipping pandas when the replay allows it."""
        matrix = self.transformed(columns)
        if matrix is None:
            return self.predict(self.frame(columns))
        final = self.fast.predictor
        if self.output_type == "probability":
            return np.asarray(final.predict_proba(matrix), dtype=np.float64)[:, self.positive_index]
        return np.asarray(final.predict(matrix), dtype=np.float64)

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        """The model's output per row: P(positive class) or the regression value (float64)."""
        if self.output_type == "probability":
            return np.asarray(self.estimator.predict_proba(frame), dtype=np.float64)[
                :, self.positive_index
            ]
        return np.asarray(self.estimator.predict(frame), dtype=np.float64)

    def margin(self, frame: pd.DataFrame) -> np.ndarray:
        """The output in the space SHAP explains additively: log-odds for classifiers.

        Oriented so that larger means more of the positive class.
        """
        if self.output_type != "probability":
            return self.predict(frame)
        if hasattr(self.estimator, "decision_function"):
            raw = np.asarray(self.estimator.decision_function(frame), dtype=np.float64)
            return raw if self.positive_index == 1 else -raw
        p = np.clip(self.predict(frame), 1e-15, 1 - 1e-15)
        return np.log(p / (1 - p))


def _length(columns: Mapping[str, Any]) -> int:
    """The length of the first column that is not a scalar (1 if all are)."""
    for value in columns.values():
        if isinstance(value, np.ndarray):
            if value.ndim:
                return value.size
        elif np.ndim(value) > 0:
            return int(np.size(value))
    return 1


def frame_from_columns(
    schema: list[dict[str, Any]], order: list[str], columns: Mapping[str, Any]
) -> pd.DataFrame:
    """A DataFrame in ``order``: numeric features as float64, categorical as object."""
    types = {f["name"]: f["type"] for f in schema}
    lengths = {np.size(v) for v in columns.values() if np.ndim(v) > 0}
    n = lengths.pop() if lengths else 1
    data: dict[str, Any] = {}
    for name in order:
        value = columns[name]
        array = np.broadcast_to(np.asarray(value, dtype=object), (n,))
        if types.get(name) == "categorical":
            data[name] = pd.Series(array, dtype=object)
        else:
            data[name] = pd.Series(array.astype(np.float64), dtype=np.float64)
    return pd.DataFrame(data)
