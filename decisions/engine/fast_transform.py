"""scikit-learn preprocessing replayed in plain NumPy, for the real-time path.

A ``ColumnTransformer`` on a pandas frame costs about 3 ms per call whatever the number of
rows (pandas indexing, validation, joblib dispatch); the arithmetic of a scaler or a
one-hot encoder on one customer costs microseconds. ``compile_fast_transform`` reads the
fitted attributes of the per-column transformers the registry accepts and builds the
same matrix from column arrays. It is an optimisation only: it is used when it reproduces
scikit-learn's own output on the model version's reference sample (to 1e-12), and
otherwise ``None`` sends callers back to scikit-learn.

The same goes for a final HistGradientBoosting model (``TreeReplay``): scikit-learn walks
its trees one Python call at a time (about 0.9 ms for 150 trees, whatever the number of
rows), each tree over every row before the next. A compiled walk (Numba), row by row
through every tree, gives the same sums, added in the same order: 2 us for one row of the
demo's 150-tree onboarding model, 29 us for the 21 rows of one onboarding decision
(a NumPy walk of all trees level by level took 0.29 ms), and 2.6 us a row in large batches
against scikit-learn's 3.9 (the rows stay in cache while the trees are walked).

And for a final binary LogisticRegression (``LinearReplay``): its ``predict_proba`` spends
about 0.3 ms a call validating its input (feature counts, dtypes, finiteness) before one
dot product; the replay does the same dot product, intercept and ``expit`` on the matrix
the replay built (already checked), so the bits are scikit-learn's.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from numba import njit
from scipy import special
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import (
    FunctionTransformer,
    MaxAbsScaler,
    MinMaxScaler,
    OneHotEncoder,
    OrdinalEncoder,
    RobustScaler,
    StandardScaler,
)

# columns (n, c) of one transformer's inputs -> (n, width) float64
_Block = Callable[[list[np.ndarray]], np.ndarray]


class _Unsupported(Exception):
    """This preprocessing has no NumPy replay here; use scikit-learn's."""


@dataclass(frozen=True, eq=False)
class TreeReplay:
    """A fitted single-output HistGradientBoosting model's trees as flat arrays.

    All trees' nodes are numbered together, the split nodes first (``feature``,
    ``threshold`` and ``missing_left`` cover only those), so a node numbered
    ``len(feature)`` or above is a leaf.
    """

    feature: np.ndarray
    threshold: np.ndarray
    missing_left: np.ndarray
    left: np.ndarray
    right: np.ndarray
    value: np.ndarray
    roots: np.ndarray
    baseline: float
    final: Any

    def raw(self, matrix: np.ndarray) -> np.ndarray:
        """(n,) the raw score: baseline plus every tree's leaf value, added in tree order.

        Large batches (an optimisation run scores 420,000 rows a call) are split over the
        machine's cores, a thread each: the compiled walk releases the GIL, and each row's
        sum is the same whichever thread adds it.
        """
        matrix = np.ascontiguousarray(matrix, dtype=np.float64)
        out = np.empty(len(matrix), dtype=np.float64)
        threads = min(_cores(), len(matrix) // PARALLEL_ROWS)
        if threads <= 1:
            self._walk_rows(matrix, out)
            return out
        bounds = np.linspace(0, len(matrix), threads + 1).astype(int)
        parts = zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True)
        list(
            _pool().map(
                lambda ab: self._walk_rows(matrix[ab[0] : ab[1]], out[ab[0] : ab[1]]), parts
            )
        )
        return out

    def _walk_rows(self, matrix: np.ndarray, out: np.ndarray) -> None:
        _walk(
            matrix,
            self.feature,
            self.threshold,
            self.missing_left,
            self.left,
            self.right,
            self.value,
            self.roots,
            self.baseline,
            out,
        )

    def predict_proba(self, matrix: np.ndarray) -> np.ndarray:
        return np.asarray(self.final._loss.predict_proba(self.raw(matrix)), dtype=np.float64)

    def predict(self, matrix: np.ndarray) -> np.ndarray:
        return np.asarray(self.final._loss.link.inverse(self.raw(matrix)), dtype=np.float64)


PARALLEL_ROWS = 50_000
"""Rows a thread takes at least: below it one thread walks them all (a real-time decision's
21 rows take 29 us, less than handing work to a thread)."""
_POOL: list[tuple[ThreadPoolExecutor, int]] = []
_POOL_LOCK = threading.Lock()


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _pool() -> ThreadPoolExecutor:
    """One pool per process, made on first use (so a forked worker makes its own)."""
    with _POOL_LOCK:
        if not _POOL or _POOL[0][1] != os.getpid():
            _POOL[:] = [(ThreadPoolExecutor(_cores(), thread_name_prefix="tree-walk"), os.getpid())]
        return _POOL[0][0]


@njit(cache=True, nogil=True)
def _walk(
    matrix, feature, threshold, missing_left, left, right, value, roots, baseline, out
):  # pragma: no cover (compiled)
    """Every row through every tree: left when the value is <= the split's threshold, or
    when it is missing and the split sends missing values left (scikit-learn's
    ``_predict_one_from_raw_data``); the leaf values added to ``baseline`` in tree order,
    as scikit-learn's ``+=`` per tree does, so the sums are the same to the bit."""
    splits = feature.shape[0]
    for r in range(matrix.shape[0]):
        total = baseline
        for t in range(roots.shape[0]):
            node = roots[t]
            while node < splits:
                x = matrix[r, feature[node]]
                go_left = missing_left[node] if x != x else x <= threshold[node]
                node = left[node] if go_left else right[node]
            total += value[node]
        out[r] = total


def compile_tree_replay(final: Any, reference: np.ndarray) -> TreeReplay | None:
    """The NumPy walk of a HistGradientBoosting model, or None when it does not apply here
    (categorical splits, several trees per iteration) or does not reproduce scikit-learn's
    output on ``reference`` (the transformed reference sample) bit for bit."""
    if type(final) not in (HistGradientBoostingClassifier, HistGradientBoostingRegressor):
        return None
    if not len(reference):
        return None
    try:
        if final.n_trees_per_iteration_ != 1 or (
            final.is_categorical_ is not None and np.any(final.is_categorical_)
        ):
            return None
        trees = [iteration[0].nodes for iteration in final._predictors]
        baseline = float(np.asarray(final._baseline_prediction).reshape(-1)[0])
    except (AttributeError, IndexError, TypeError):
        return None
    if not trees:
        return None
    sizes = np.array([len(t) for t in trees])
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.intp)
    nodes = np.concatenate(trees)
    leaf = nodes["is_leaf"].astype(bool)
    # Renumber: split nodes first, leaves after, each group in its original order.
    order = np.argsort(leaf, kind="stable")
    number = np.empty(len(nodes), dtype=np.intp)
    number[order] = np.arange(len(nodes), dtype=np.intp)
    shift = np.repeat(starts, sizes)
    left = np.where(leaf, np.arange(len(nodes)), nodes["left"].astype(np.intp) + shift)
    right = np.where(leaf, np.arange(len(nodes)), nodes["right"].astype(np.intp) + shift)
    splits = order[: int((~leaf).sum())]
    replay = TreeReplay(
        feature=nodes["feature_idx"][splits].astype(np.intp),
        threshold=nodes["num_threshold"][splits].astype(np.float64),
        missing_left=nodes["missing_go_to_left"][splits].astype(bool),
        left=number[left][order],
        right=number[right][order],
        value=nodes["value"][order].astype(np.float64),
        roots=number[starts],
        baseline=baseline,
        final=final,
    )
    classifier = type(final) is HistGradientBoostingClassifier
    try:
        if classifier:
            same = np.array_equal(replay.predict_proba(reference), final.predict_proba(reference))
        else:
            same = np.array_equal(replay.predict(reference), final.predict(reference))
        if not same:
            return None
    except (AttributeError, ValueError, TypeError):  # private scikit-learn names moved
        return None
    return replay


@dataclass(frozen=True, eq=False)
class LinearReplay:
    """A fitted binary LogisticRegression's ``predict_proba``, as scikit-learn computes it
    (``LinearClassifierMixin._predict_proba_lr``: the matrix times ``coef_.T`` plus
    ``intercept_``, then ``expit`` in place) without its input validation."""

    coef_t: np.ndarray
    intercept: np.ndarray

    def predict_proba(self, matrix: np.ndarray) -> np.ndarray:
        prob = (matrix @ self.coef_t + self.intercept).reshape(-1)
        special.expit(prob, out=prob)
        return np.stack([1 - prob, prob], axis=1)


def compile_linear_replay(final: Any, reference: np.ndarray) -> LinearReplay | None:
    """The replay of a binary LogisticRegression (exactly that class), or None when it does
    not give scikit-learn's probabilities to the bit on ``reference``."""
    if type(final) is not LogisticRegression:
        return None
    try:
        if len(final.classes_) != 2 or final.coef_.shape[0] != 1:
            return None
        replay = LinearReplay(
            coef_t=np.asarray(final.coef_, dtype=np.float64).T,
            intercept=np.asarray(final.intercept_, dtype=np.float64),
        )
        matrix = np.asarray(reference, dtype=np.float64)
        if not np.array_equal(replay.predict_proba(matrix), final.predict_proba(matrix)):
            return None
    except (AttributeError, ValueError, TypeError):
        return None
    return replay


@dataclass(frozen=True)
class FastTransform:
    """Column arrays -> the matrix the final estimator was fitted on."""

    blocks: tuple[tuple[tuple[str, ...], _Block, slice], ...]
    width: int
    final: Any
    trees: TreeReplay | None = None
    """The final model's NumPy walk, when it is a HistGradientBoosting model it applies to."""
    linear: LinearReplay | None = None
    """The final model's probabilities without validation, when it is a LogisticRegression."""

    @property
    def predictor(self) -> Any:
        """What predicts from the replayed matrix: a replay of the final model, or itself."""
        return self.trees or self.linear or self.final

    def transform(self, columns: Mapping[str, Any], n: int) -> np.ndarray:
        out = np.empty((n, self.width), dtype=np.float64)
        for names, block, where in self.blocks:
            out[:, where] = block([_column(columns[c], n) for c in names])
        return out


def _column(value: Any, n: int) -> np.ndarray:
    """``value`` as an array of length ``n`` (a scalar or length-1 array repeated).

    Most inputs already are one; ``np.broadcast_to`` costs about 3 us even then, which
    over every column of every model was 4% of a real-time request (py-spy).
    """
    array = np.asarray(value)
    return array if array.shape == (n,) else np.broadcast_to(array, (n,))


def _numeric(inputs: list[np.ndarray]) -> np.ndarray:
    # Filled column by column: np.column_stack's checks cost more than the copy at n = 21.
    out = np.empty((len(inputs[0]), len(inputs)), dtype=np.float64)
    for j, x in enumerate(inputs):
        out[:, j] = x
    return out


def _elementwise(step: Any) -> Callable[[np.ndarray], np.ndarray]:
    """One numeric per-column transformer as a function on (n, c) float arrays."""
    kind = type(step)
    if step == "passthrough" or (
        kind is FunctionTransformer and step.func is None and step.inverse_func is None
    ):
        return lambda x: x
    if kind is StandardScaler:
        mean = step.mean_ if step.with_mean else 0.0
        scale = step.scale_ if step.with_std else 1.0
        return lambda x: (x - mean) / scale
    if kind is MinMaxScaler:
        low, high = step.feature_range
        scale, shift, clip = step.scale_, step.min_, step.clip
        return (
            (lambda x: np.clip(x * scale + shift, low, high))
            if clip
            else (lambda x: x * scale + shift)
        )
    if kind is RobustScaler:
        center = step.center_ if step.with_centering else 0.0
        scale = step.scale_ if step.with_scaling else 1.0
        return lambda x: (x - center) / scale
    if kind is MaxAbsScaler:
        return lambda x: x / step.scale_
    if kind is SimpleImputer:
        if step.add_indicator or not (
            isinstance(step.missing_values, float) and np.isnan(step.missing_values)
        ):
            raise _Unsupported
        fill = np.asarray(step.statistics_, dtype=np.float64)
        return lambda x: np.where(np.isnan(x), fill, x)
    raise _Unsupported


def _one_hot(step: OneHotEncoder) -> _Block:
    if getattr(step, "_infrequent_enabled", False):
        raise _Unsupported
    drop = step.drop_idx_ if step.drop_idx_ is not None else [None] * len(step.categories_)
    kept = []
    for categories, dropped in zip(step.categories_, drop, strict=True):
        keep = np.ones(len(categories), dtype=bool)
        if dropped is not None:
            keep[int(dropped)] = False
        kept.append((np.asarray(categories, dtype=object), keep))
    error = step.handle_unknown == "error"

    def block(inputs: list[np.ndarray]) -> np.ndarray:
        parts = []
        for x, (categories, keep) in zip(inputs, kept, strict=True):
            hits = np.asarray(x, dtype=object).reshape(-1, 1) == categories.reshape(1, -1)
            if error and not hits.any(axis=1).all():
                raise ValueError("unknown category")
            parts.append(hits[:, keep].astype(np.float64))
        return np.hstack(parts)

    return block


def _ordinal(step: OrdinalEncoder) -> _Block:
    tables = [{c: float(i) for i, c in enumerate(cats)} for cats in step.categories_]
    unknown = float(step.unknown_value) if step.handle_unknown == "use_encoded_value" else None

    def block(inputs: list[np.ndarray]) -> np.ndarray:
        out = np.empty((len(inputs[0]), len(inputs)))
        for j, (x, table) in enumerate(zip(inputs, tables, strict=True)):
            values = [table.get(v, unknown) for v in np.asarray(x, dtype=object)]
            if any(v is None for v in values):
                raise ValueError("unknown category")
            out[:, j] = values
        return out

    return block


def _block_for(step: Any) -> _Block:
    if isinstance(step, OneHotEncoder) and type(step) is OneHotEncoder:
        return _one_hot(step)
    if type(step) is OrdinalEncoder:
        return _ordinal(step)
    if type(step) is Pipeline:
        functions = [_elementwise(s) for _, s in step.steps]

        def chained(inputs: list[np.ndarray]) -> np.ndarray:
            x = _numeric(inputs)
            for function in functions:
                x = function(x)
            return x

        return chained
    function = _elementwise(step)
    return lambda inputs: function(_numeric(inputs))


def _names(columns: Any, input_columns: Sequence[str]) -> tuple[str, ...]:
    if isinstance(columns, str):
        return (columns,)
    selection = list(np.asarray(columns).reshape(-1)) if not isinstance(columns, list) else columns
    if selection and all(isinstance(c, bool | np.bool_) for c in selection):
        return tuple(c for c, keep in zip(input_columns, selection, strict=True) if keep)
    return tuple(input_columns[c] if isinstance(c, int | np.integer) else str(c) for c in selection)


def compile_fast_transform(
    estimator: Any, input_columns: Sequence[str], reference: pd.DataFrame
) -> FastTransform | None:
    """A NumPy replay of ``estimator``'s preprocessing, or None when there is none here.

    Accepts a Pipeline whose only preprocessing step is a ColumnTransformer of per-column
    transformers; checks the replay against scikit-learn on ``reference``.
    """
    try:
        fast = _compile(estimator, list(input_columns))
    except _Unsupported:
        return None
    if fast is None:
        return None
    expected = _sklearn_transform(estimator, reference)
    columns = {c: reference[c].to_numpy() for c in input_columns}
    try:
        replayed = fast.transform(columns, len(reference))
    except (ValueError, TypeError):
        return None
    if expected.shape != replayed.shape or not np.allclose(
        expected, replayed, rtol=1e-12, atol=1e-12, equal_nan=True
    ):
        return None
    return replace(
        fast,
        trees=compile_tree_replay(fast.final, replayed),
        linear=compile_linear_replay(fast.final, replayed),
    )


def _compile(estimator: Any, input_columns: list[str]) -> FastTransform | None:
    # A bare estimator fitted on a frame wants a frame (feature-name checks): no replay.
    if type(estimator) is not Pipeline:
        return None
    *steps, (_, final) = estimator.steps
    if len(steps) != 1 or type(steps[0][1]) is not ColumnTransformer:
        return None
    transformer: ColumnTransformer = steps[0][1]
    blocks = []
    for name, step, columns in transformer.transformers_:
        where = transformer.output_indices_[name]
        if step == "drop" or where.stop == where.start:
            continue
        names = _names(columns, input_columns)
        blocks.append((names, _block_for(step), where))
    width = max((b[2].stop for b in blocks), default=0)
    return FastTransform(tuple(blocks), width, final)


def _sklearn_transform(estimator: Any, frame: pd.DataFrame) -> np.ndarray:
    data = estimator[:-1].transform(frame)
    if sp.issparse(data):
        data = data.toarray()
    return np.asarray(data, dtype=np.float64)
