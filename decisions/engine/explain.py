"""SHAP reason codes per original feature: why a model version scored a customer as it did.

A decision names up to four principal reasons (Regulation B style adverse-action reasons for a
decline, or what drove an offer). They must be about the customer's own attributes as the
customer gave them ("income", "region"), not about the columns a pipeline made of them
("region_north", "scale__income"). So the explainer folds the SHAP values of every transformed
column back onto the input column it came from, which is only honest when each transformed
column comes from exactly one input column: per-column scalers, imputers and encoders. Anything
that mixes columns (PCA, polynomial features, custom functions) is refused with
``UnsupportedModel`` when the model version is registered, rather than explained wrongly later.

Explanations are additive in the model's margin (``ModelRuntime.margin``: log-odds of the
positive class for classifiers, the prediction for regressors), and ``FeatureExplainer.explain``
checks that they add up on every call: shap reads scikit-learn's private tree records for
HistGradientBoosting, and a silent break there must fail loudly, not sign off wrong reasons.

shap is imported only when an explainer is built: it is heavy and the web start-up path that
merely imports the engine does not need it. No Django here.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.base import is_classifier
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import (
    ExtraTreesClassifier,
    ExtraTreesRegressor,
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.impute import SimpleImputer
from sklearn.linear_model import GammaRegressor, PoissonRegressor, TweedieRegressor
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
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

from decisions.engine.predictors import ModelRuntime

logger = logging.getLogger(__name__)

ADDITIVITY_TOLERANCE = 1e-6
"""Largest gap allowed between ``base_value + sum(contributions)`` and the margin (relative to
the margin once it exceeds 1 in absolute value, so dollar-valued regressions are held to the
same float64 precision as log-odds)."""

# Exact types, not isinstance: a subclass may override transform() and mix columns.
_COLUMNWISE_TRANSFORMERS: tuple[type, ...] = (
    StandardScaler,
    MinMaxScaler,
    RobustScaler,
    MaxAbsScaler,
    SimpleImputer,
    OrdinalEncoder,
)
# Trees whose raw output shap explains in the model's margin (log-odds or the prediction).
_MARGIN_TREES: tuple[type, ...] = (
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    RandomForestRegressor,
    ExtraTreesRegressor,
    DecisionTreeRegressor,
)
# Trees whose raw output is a probability (averaged leaf class frequencies), not log-odds.
_PROBABILITY_TREES: tuple[type, ...] = (
    RandomForestClassifier,
    ExtraTreesClassifier,
    DecisionTreeClassifier,
)
_LOG_LINK_LINEAR: tuple[type, ...] = (PoissonRegressor, GammaRegressor, TweedieRegressor)
_LOG_LINK_LOSSES = frozenset({"poisson", "gamma"})
_CLIP = 1e-15
"""The same probability clip as ``ModelRuntime.margin``, so the log-odds agree at 0 and 1."""


# Between 1e-6 and 1 - 1e-6 the logit of a float64 probability is accurate to ~1e-10, far
# inside the additivity tolerance; nearer 0 or 1 the model is asked for its raw margin.
_ACCURATE_LOGIT = 1e-6


class UnsupportedModel(ValueError):
    """The model version cannot be explained per original feature; the message says which part.

    The registry calls ``explainer_for`` when a model version is registered and refuses the
    version on this error, so a decision never goes out without its reasons.
    """

    code = "unexplainable_model"


class AdditivityError(RuntimeError):
    """The contributions do not add up to the model's margin: the explanation would be wrong.

    Raised instead of returning reasons that do not explain the score (a shap or scikit-learn
    upgrade that changed private tree records, say).
    """

    code = "explanation_not_additive"


class MissingReasonCode(KeyError):
    """A model feature has no entry (code and text) in the reason-code catalog."""

    code = "missing_reason_code"

    def __str__(self) -> str:
        # KeyError would repr() the message, quoting it; this one is meant to be read.
        return str(self.args[0]) if self.args else ""


@dataclass(frozen=True, eq=False)
class Explanation:
    """Additive explanation of a batch of rows in the model's margin space.

    ``base_value[i] + contributions[i].sum() == output[i]`` for every row ``i``; each column of
    ``contributions`` belongs to the input feature of the same index in ``features``.
    """

    base_value: np.ndarray
    """(n,) the margin of the background (mean or training) population."""
    contributions: np.ndarray
    """(n, F) how much each original feature moved the margin away from ``base_value``."""
    features: list[str]
    """The model's input columns, in ``ModelRuntime.input_columns`` order."""
    output: np.ndarray
    """(n,) ``ModelRuntime.margin`` of the explained rows."""


# (transformed rows, margin) -> (base value per row, contribution per transformed column)
_Attribution = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


class FeatureExplainer:
    """Explains one model version's margin per original feature; build once per version.

    Holds the fitted preprocessing steps, the final estimator with its shap explainer and the
    matrix folding transformed columns back onto input columns. ``explain`` mutates nothing,
    so one instance can serve concurrent requests.
    """

    def __init__(
        self,
        *,
        runtime: ModelRuntime,
        preprocess: Sequence[Any],
        model: Any,
        origins: np.ndarray,
        attribution: _Attribution,
        method: str,
    ) -> None:
        self.runtime = runtime
        self.features = list(runtime.input_columns)
        self.method = method
        """Which explainer is behind the numbers: ``linear``, ``tree`` or ``tree-probability``."""
        self._preprocess = list(preprocess)
        self._model = model
        self._attribution = attribution
        # (transformed columns, input features): contributions = phi @ fold sums each feature's
        # one-hot (or otherwise derived) columns in one vectorised product.
        fold = np.zeros((len(origins), len(self.features)))
        fold[np.arange(len(origins)), origins] = 1.0
        self._fold = fold

    @property
    def uses_tables(self) -> bool:
        """Whether Tree SHAP comes from ``fast_tree_shap``'s lookup tables (else from shap)."""
        return isinstance(self._attribution, _TableAttribution)

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        """The rows as the final estimator sees them: dense float64 (n, transformed columns)."""
        return _dense(_apply(self._preprocess, frame))

    def explain(self, frame: pd.DataFrame) -> Explanation:
        """Explain every row of ``frame`` (the estimator's input frame, ``ModelRuntime.frame``).

        ``output`` is ``ModelRuntime.margin(frame)`` computed from the rows already transformed
        for shap, so the preprocessing runs once per call (it dominates the real-time cost);
        ``explainer_for`` proves the two agree on the reference sample. Raises
        ``AdditivityError`` if the contributions fail to add up to the margin.
        """
        if list(frame.columns) != self.features:
            frame = frame.loc[:, self.features]
        return self._explain_transformed(_apply(self._preprocess, frame))

    def explain_columns(
        self, columns: Mapping[str, Any], *, predicted: np.ndarray | None = None
    ) -> Explanation:
        """``explain`` from column arrays: the NumPy replay of the preprocessing when the
        model has one (microseconds, not the milliseconds of a pandas frame).

        ``predicted`` is the model's own output for these rows when the caller already has
        it (the decision function just computed it): the margin is then its logit, and the
        model is not run a second time. Probabilities too close to 0 or 1 for an accurate
        logit are recomputed.
        """
        matrix = self.runtime.transformed(columns)
        if matrix is None:
            return self.explain(self.runtime.frame(columns))
        return self._explain_transformed(matrix, output=self._margin_from(predicted))

    def _margin_from(self, predicted: np.ndarray | None) -> np.ndarray | None:
        if predicted is None:
            return None
        predicted = np.asarray(predicted, dtype=np.float64).reshape(-1)
        if self.runtime.output_type != "probability":
            return predicted
        if np.any((predicted < _ACCURATE_LOGIT) | (predicted > 1 - _ACCURATE_LOGIT)):
            return None
        return np.log(predicted / (1 - predicted))

    def _explain_transformed(
        self, transformed: Any, output: np.ndarray | None = None
    ) -> Explanation:
        if output is None:
            output = self._margin(transformed)
        base, phi = self._attribution(_dense(transformed), output)
        contributions = phi @ self._fold
        gap = np.abs(base + contributions.sum(axis=1) - output)
        if not np.all(gap <= ADDITIVITY_TOLERANCE * np.maximum(1.0, np.abs(output))):
            raise AdditivityError(
                f"{self.runtime.key}: SHAP contributions miss the model margin by up to "
                f"{float(np.max(gap)):.3g}; refusing reasons that do not explain the score"
            )
        return Explanation(
            base_value=base,
            contributions=contributions,
            features=list(self.features),
            output=output,
        )

    def _margin(self, transformed: Any) -> np.ndarray:
        """``ModelRuntime.margin`` from the final estimator on already transformed rows."""
        runtime, model = self.runtime, self._model
        if runtime.output_type != "probability":
            return np.asarray(model.predict(transformed), dtype=np.float64).reshape(-1)
        if hasattr(model, "decision_function"):
            raw = np.asarray(model.decision_function(transformed), dtype=np.float64).reshape(-1)
            return raw if runtime.positive_index == 1 else -raw
        probability = np.asarray(model.predict_proba(transformed), dtype=np.float64)
        p = np.clip(probability[:, runtime.positive_index], _CLIP, 1 - _CLIP)
        return np.log(p / (1 - p))


def explainer_for(runtime: ModelRuntime, *, tables: bool = False) -> FeatureExplainer:
    """Build the explainer of a model version and prove it on the version's reference sample.

    Call it when the version is registered (``UnsupportedModel`` refuses it, naming the step)
    and cache the result per version: building costs a shap explainer and one explanation of
    the reference sample; explaining afterwards costs one pass through the preprocessing.

    ``tables``: for a HistGradientBoosting model, also build the Tree SHAP lookup tables
    (``fast_tree_shap``, a fraction of a second) and explain with them once they reproduce
    shap's values on the reference sample: 10-25x faster per row in batches, 4-5x alone.
    Worth it for an explainer that will serve decisions, not for a registration check.
    """
    estimator = runtime.estimator
    steps = _flatten(estimator, path=type(estimator).__name__)
    *preprocess, (final_path, final) = steps
    origins = np.arange(len(runtime.input_columns))
    for path, step in preprocess:
        origins = origins[_origins(step, width=len(origins), path=path)]
    width = getattr(final, "n_features_in_", len(origins))
    if width != len(origins):
        raise UnsupportedModel(
            f"{final_path}: expects {width} columns but the preprocessing makes {len(origins)}"
        )
    fitted = [step for _, step in preprocess]
    reference = runtime.reference
    transformed = _dense(_apply(fitted, reference)) if len(reference) else None
    attribution, method = _attribution_for(
        runtime, final, reference=transformed, path=final_path, tables=tables
    )
    explainer = FeatureExplainer(
        runtime=runtime,
        preprocess=fitted,
        model=final,
        origins=origins,
        attribution=attribution,
        method=method,
    )
    if len(reference):
        _prove(explainer, reference, path=final_path)
    return explainer


def _prove(explainer: FeatureExplainer, reference: pd.DataFrame, *, path: str) -> None:
    """Refuse the version unless its reference rows' explanations add up to its own margin.

    This is where a shap or scikit-learn upgrade that misreads a model, or a final estimator
    that scores transformed rows differently from the pipeline, stops a registration.
    """
    try:
        explained = explainer.explain(reference)
    except AdditivityError as error:
        raise UnsupportedModel(f"{path}: {error}") from error
    expected = np.asarray(explainer.runtime.margin(reference), dtype=np.float64).reshape(-1)
    gap = np.abs(explained.output - expected)
    if not np.all(gap <= ADDITIVITY_TOLERANCE * np.maximum(1.0, np.abs(expected))):
        raise UnsupportedModel(
            f"{path}: scoring the transformed rows misses the model's margin by up to "
            f"{float(np.max(gap)):.3g}; the explainer cannot reproduce the score"
        )


def reason_text(entry: Mapping[str, str], *, adverse: bool) -> str:
    """A catalog entry's customer-facing text: its adverse-action ``text``, or for a
    decision that is not adverse its neutral ``factor`` when it has one."""
    if not adverse and entry.get("factor"):
        return str(entry["factor"])
    return str(entry["text"])


def principal_reasons(
    *,
    explanation: Explanation,
    row: int,
    values: Mapping[str, Any],
    catalog: Mapping[str, Mapping[str, str]],
    exclude: Collection[str] = (),
    direction: Literal["raise", "lower", "magnitude"] = "magnitude",
    limit: int = 4,
    adverse: bool = True,
) -> list[dict[str, Any]]:
    """Up to ``limit`` ranked reasons for one row: ``{"code", "text", "feature", "value",
    "contribution"}``.

    The text is the catalog entry's ``text``, written as an adverse-action reason ("Debt-
    to-income ratio too high"); for a decision that is not adverse (``adverse=False``) its
    ``factor`` instead when it has one, a neutral name of what weighed ("Debt-to-income
    ratio"), since an offer's reasons are not reasons for a refusal.

    ``direction="raise"`` names the features that pushed the margin up the most (for a
    probability-of-default model on a decline: what raised the predicted risk), ``"lower"``
    those that pushed it down the most, ``"magnitude"`` the largest either way. A feature with
    no (numerically zero) contribution is never a reason, nor is one in ``exclude``: action
    attributes a model takes as inputs (limit, APR) say nothing about the customer.
    ``contribution`` is the unrounded margin contribution (the full vector is logged beside it).

    Raises ``MissingReasonCode`` if any model feature outside ``exclude`` lacks a catalog
    entry, whether or not it is chosen this time, so a gap shows up on the first decision.
    """
    if direction not in ("raise", "lower", "magnitude"):
        raise ValueError(f"direction must be 'raise', 'lower' or 'magnitude', not {direction!r}")
    if limit < 0:
        raise ValueError(f"limit must be >= 0, not {limit}")
    excluded = set(exclude)
    candidates = [(i, f) for i, f in enumerate(explanation.features) if f not in excluded]
    for _, feature in candidates:
        entry = catalog.get(feature)
        if entry is None or "code" not in entry or "text" not in entry:
            raise MissingReasonCode(
                f"reason-code catalog has no code and text for model feature {feature!r}"
            )
    contributions = np.asarray(explanation.contributions[row], dtype=np.float64)
    scores = {"raise": contributions, "lower": -contributions, "magnitude": np.abs(contributions)}
    score = scores[direction]
    # Float noise (a value at the background mean gives ~1e-17, not 0) is no reason.
    floor = 1e-9 * max(1.0, float(np.abs(contributions).sum()))
    # Largest first; ties keep the model's column order so the same row gives the same reasons.
    ranked = sorted(candidates, key=lambda item: (-score[item[0]], item[0]))
    reasons: list[dict[str, Any]] = []
    for i, feature in ranked:
        if len(reasons) >= limit or not score[i] > floor:
            break
        if feature not in values:
            raise KeyError(f"no value given for model feature {feature!r}")
        reasons.append(
            {
                "code": str(catalog[feature]["code"]),
                "text": reason_text(catalog[feature], adverse=adverse),
                "feature": feature,
                "value": _json_value(values[feature]),
                "contribution": float(contributions[i]),
            }
        )
    return reasons


def principal_reasons_of_rows(
    *,
    explanation: Explanation,
    rows: np.ndarray,
    values: Mapping[str, Sequence[Any]],
    catalog: Mapping[str, Mapping[str, str]],
    exclude: Collection[str] = (),
    directions: Sequence[str],
    limit: int = 4,
    adverse: Sequence[bool] | None = None,
) -> list[list[dict[str, Any]]]:
    """``principal_reasons`` of many rows at once, ranked in one sort (an optimisation run
    gives reasons to every customer): for each ``rows[j]``, with ``directions[j]``, the
    customer's values at ``values[name][j]``.

    The same rule as ``principal_reasons`` (a property test holds them equal, ties and
    float noise included): 3 us a row here against 13 us a call there, which stays for
    one row, where this one's NumPy calls on tiny arrays cost 64 us.
    """
    for direction in set(directions):
        if direction not in ("raise", "lower", "magnitude"):
            raise ValueError(
                f"direction must be 'raise', 'lower' or 'magnitude', not {direction!r}"
            )
    if limit < 0:
        raise ValueError(f"limit must be >= 0, not {limit}")
    excluded = set(exclude)
    candidates = [i for i, f in enumerate(explanation.features) if f not in excluded]
    for i in candidates:
        entry = catalog.get(explanation.features[i])
        if entry is None or "code" not in entry or "text" not in entry:
            raise MissingReasonCode(
                "reason-code catalog has no code and text for model feature "
                f"{explanation.features[i]!r}"
            )
    rows = np.asarray(rows, dtype=np.intp).reshape(-1)
    contributions = np.asarray(explanation.contributions, dtype=np.float64)[rows]
    kinds = np.asarray(directions, dtype=object).reshape(-1)
    part = contributions[:, candidates]
    score = np.where(
        (kinds == "raise")[:, None],
        part,
        np.where((kinds == "lower")[:, None], -part, np.abs(part)),
    )
    # Float noise (a value at the background mean gives ~1e-17, not 0) is no reason.
    floor = 1e-9 * np.maximum(1.0, np.abs(contributions).sum(axis=1))
    # Largest first; ties keep the model's column order (a stable sort), so the same row
    # gives the same reasons.
    order = np.argsort(-score, axis=1, kind="stable")[:, :limit]
    ranked = np.take_along_axis(score, order, axis=1)
    valid = ranked > floor[:, None]
    counts = valid.argmin(axis=1) if order.shape[1] else np.zeros(len(rows), dtype=np.intp)
    counts = np.where(valid.all(axis=1), order.shape[1], counts)
    names = explanation.features
    texts = {
        names[i]: (
            str(catalog[names[i]]["code"]),
            reason_text(catalog[names[i]], adverse=True),
            reason_text(catalog[names[i]], adverse=False),
        )
        for i in candidates
    }
    adverse_rows = [True] * len(rows) if adverse is None else [bool(a) for a in adverse]
    found: list[list[dict[str, Any]]] = []
    chosen = order.tolist()
    totals = counts.tolist()
    for j, count in enumerate(totals):
        reasons = []
        for c in chosen[j][:count]:
            i = candidates[c]
            feature = names[i]
            if feature not in values:
                raise KeyError(f"no value given for model feature {feature!r}")
            code, adverse_text, factor_text = texts[feature]
            text = adverse_text if adverse_rows[j] else factor_text
            reasons.append(
                {
                    "code": code,
                    "text": text,
                    "feature": feature,
                    "value": _json_value(values[feature][j]),
                    "contribution": float(contributions[j, i]),
                }
            )
        found.append(reasons)
    return found


# --- which transformed column came from which input column ----------------------------------


def _flatten(estimator: Any, *, path: str) -> list[tuple[str, Any]]:
    """``(path, step)`` for every step, nested pipelines inlined; the last is the model."""
    if type(estimator) is not Pipeline:
        return [(path, estimator)]
    steps: list[tuple[str, Any]] = []
    for name, step in estimator.steps:
        if step is None or (isinstance(step, str) and step == "passthrough"):
            continue
        steps.extend(_flatten(step, path=f"{path} > {name}"))
    if not steps:
        raise UnsupportedModel(f"{path}: the pipeline has no model")
    return steps


def _origins(step: Any, *, width: int, path: str) -> np.ndarray:
    """For each output column of the fitted ``step``, the index of its input column."""
    if step is None or (isinstance(step, str) and step == "passthrough"):
        return np.arange(width)
    kind = type(step)
    expected = getattr(step, "n_features_in_", width)
    if expected != width:
        raise UnsupportedModel(f"{path}: expects {expected} columns but is given {width}")
    if kind is Pipeline:
        origins = np.arange(width)
        for name, sub in step.steps:
            origins = origins[_origins(sub, width=len(origins), path=f"{path} > {name}")]
        return origins
    if kind is ColumnTransformer:
        return _column_transformer_origins(step, width=width, path=path)
    if kind is OneHotEncoder:
        return _one_hot_origins(step, width=width, path=path)
    if kind in _COLUMNWISE_TRANSFORMERS:
        if kind is SimpleImputer and step.add_indicator:
            raise UnsupportedModel(
                f"{path}: SimpleImputer(add_indicator=True) adds indicator columns; "
                "use add_indicator=False"
            )
        return _named_origins(step, width=width, path=path)
    raise UnsupportedModel(
        f"{path}: {kind.__name__} is not a per-column transformer the explainer can map back "
        "to original features (supported: ColumnTransformer, Pipeline, OneHotEncoder, "
        + ", ".join(t.__name__ for t in _COLUMNWISE_TRANSFORMERS)
        + ", 'passthrough', 'drop')"
    )


def _named_origins(step: Any, *, width: int, path: str) -> np.ndarray:
    """Map a column-wise transformer's outputs by name: an imputer may drop empty columns."""
    names_in = [str(n) for n in getattr(step, "feature_names_in_", [f"x{i}" for i in range(width)])]
    position = {name: i for i, name in enumerate(names_in)}
    try:
        return np.asarray([position[str(n)] for n in step.get_feature_names_out()], dtype=np.intp)
    except (KeyError, AttributeError, ValueError) as error:
        raise UnsupportedModel(
            f"{path}: cannot tell which input column each {type(step).__name__} output comes from"
        ) from error


def _one_hot_origins(encoder: OneHotEncoder, *, width: int, path: str) -> np.ndarray:
    """Each input feature owns its categories' columns, minus a dropped one, with the
    infrequent categories sharing one column."""
    infrequent = getattr(encoder, "infrequent_categories_", None) or [None] * width
    drop = encoder.drop_idx_ if encoder.drop_idx_ is not None else [None] * width
    counts = []
    for categories, rare, dropped in zip(encoder.categories_, infrequent, drop, strict=True):
        n = len(categories)
        if rare is not None:
            n -= len(rare) - 1
        if dropped is not None:
            n -= 1
        counts.append(n)
    origins = np.repeat(np.arange(width), counts)
    if len(origins) != len(encoder.get_feature_names_out()):
        raise UnsupportedModel(
            f"{path}: cannot tell which feature each OneHotEncoder column encodes"
        )
    return origins


def _column_transformer_origins(
    transformer: ColumnTransformer, *, width: int, path: str
) -> np.ndarray:
    """Place every sub-transformer's origins at its ``output_indices_`` slice."""
    names = getattr(transformer, "feature_names_in_", None)
    names = None if names is None else [str(n) for n in names]
    total = max((s.stop for s in transformer.output_indices_.values()), default=0)
    declared = {name: step for name, step, _ in transformer.transformers}
    declared["remainder"] = transformer.remainder
    origins = np.full(total, -1, dtype=np.intp)
    for name, step, columns in transformer.transformers_:
        where = transformer.output_indices_[name]
        if isinstance(step, str) and step == "drop":
            continue
        inputs = _column_indices(columns, names=names, width=width, path=f"{path} > {name}")
        if _is_fitted_passthrough(step, declared=declared.get(name)):
            local = np.arange(len(inputs))
        else:
            local = _origins(step, width=len(inputs), path=f"{path} > {name}")
        if where.stop - where.start != len(local):
            raise UnsupportedModel(f"{path} > {name}: output width does not match its columns")
        origins[where] = inputs[local]
    if np.any(origins < 0):
        raise UnsupportedModel(f"{path}: some output columns come from no known transformer")
    return origins


def _is_fitted_passthrough(step: Any, *, declared: Any) -> bool:
    """Fitting replaces a declared 'passthrough' with an identity FunctionTransformer."""
    if isinstance(step, str):
        return step == "passthrough"
    return (
        isinstance(declared, str)
        and declared == "passthrough"
        and type(step) is FunctionTransformer
        and step.func is None
    )


def _column_indices(columns: Any, *, names: list[str] | None, width: int, path: str) -> np.ndarray:
    """Resolve a ColumnTransformer column selection (names, ints, mask or slice) to indices."""
    positions = np.arange(width)

    def by_name(label: Any) -> int:
        if names is None or str(label) not in names:
            raise UnsupportedModel(f"{path}: cannot resolve column {label!r}")
        return names.index(str(label))

    if isinstance(columns, slice):
        if isinstance(columns.start, str) or isinstance(columns.stop, str):
            # Label slices include their end, as in pandas .loc.
            start = None if columns.start is None else by_name(columns.start)
            stop = None if columns.stop is None else by_name(columns.stop) + 1
            return positions[start:stop]
        return positions[columns]
    if isinstance(columns, str) or np.isscalar(columns):
        columns = [columns]
    selection = list(columns)
    if not selection:
        return np.empty(0, dtype=np.intp)
    if all(isinstance(c, bool | np.bool_) for c in selection):
        return positions[np.asarray(selection, dtype=bool)]
    if all(isinstance(c, int | np.integer) for c in selection):
        return positions[np.asarray(selection, dtype=np.intp)]
    return np.asarray([by_name(c) for c in selection], dtype=np.intp)


# --- the final model -------------------------------------------------------------------------


def _attribution_for(
    runtime: ModelRuntime,
    model: Any,
    *,
    reference: np.ndarray | None,
    path: str,
    tables: bool = False,
) -> tuple[_Attribution, str]:
    """Pick the shap explainer for the final estimator, oriented like ``runtime.margin``."""
    kind = type(model)
    if runtime.output_type == "probability":
        classes = getattr(model, "classes_", None)
        if not is_classifier(model) or classes is None or len(classes) != 2:
            raise UnsupportedModel(
                f"{path}: only binary classifiers can be explained as a probability"
            )
    elif is_classifier(model):
        raise UnsupportedModel(f"{path}: a classifier cannot be explained as a regression output")
    # The margin is log-odds of classes_[1] for shap; ModelRuntime flips it when the positive
    # class is classes_[0].
    sign = -1.0 if runtime.positive_index == 0 else 1.0

    if kind in _PROBABILITY_TREES:
        return _probability_tree_attribution(runtime, model, path=path), "tree-probability"
    if kind in _MARGIN_TREES:
        if getattr(model, "loss", None) in _LOG_LINK_LOSSES:
            raise UnsupportedModel(
                f"{path}: {kind.__name__}(loss={model.loss!r}) predicts exp(raw score); "
                "its SHAP values do not add up to the prediction"
            )
        categorical = getattr(model, "is_categorical_", None)
        if categorical is not None and np.any(categorical):
            raise UnsupportedModel(
                f"{path}: shap ignores native categorical splits of {kind.__name__}; "
                "one-hot or ordinal-encode the categories instead"
            )
        attribution = _margin_tree_attribution(model, sign=sign, path=path)
        if tables and reference is not None and len(reference):
            return _table_attribution(model, attribution, sign=sign, reference=reference), "tree"
        return attribution, "tree"
    if kind in _LOG_LINK_LINEAR:
        raise UnsupportedModel(
            f"{path}: {kind.__name__} has a log link; not additive in its output"
        )
    if hasattr(model, "coef_") and hasattr(model, "intercept_"):
        return _linear_attribution(model, reference=reference, sign=sign, path=path), "linear"
    raise UnsupportedModel(
        f"{path}: {kind.__name__} is neither a linear model (coef_/intercept_) nor a supported "
        "tree ensemble"
    )


def _linear_attribution(
    model: Any, *, reference: np.ndarray | None, sign: float, path: str
) -> _Attribution:
    """Interventional SHAP against the mean transformed reference row: coef * (x - mean)."""
    import shap

    coef = np.asarray(model.coef_, dtype=np.float64)
    if coef.ndim == 2 and coef.shape[0] != 1:
        raise UnsupportedModel(f"{path}: {type(model).__name__} has more than one output")
    if reference is None:
        raise UnsupportedModel(f"{path}: a linear model needs a reference sample for its baseline")
    mean = reference.mean(axis=0, keepdims=True)
    # A one-row background makes the masker's mean exactly the sample mean; a bigger numpy
    # background would be subsampled to 100 rows before averaging.
    explainer = shap.LinearExplainer(model, shap.maskers.Independent(mean, max_samples=1))
    base = sign * float(np.asarray(explainer.expected_value, dtype=np.float64).reshape(-1)[0])

    def attribute(rows: np.ndarray, output: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        phi = np.asarray(explainer.shap_values(rows), dtype=np.float64)
        return np.full(len(rows), base), sign * phi.reshape(len(rows), -1)

    return attribute


def _tree_explainer(model: Any, *, path: str) -> Any:
    import shap

    try:
        return shap.TreeExplainer(
            model, model_output="raw", feature_perturbation="tree_path_dependent"
        )
    except Exception as error:  # shap raises assorted types for models it cannot read
        raise UnsupportedModel(
            f"{path}: shap cannot read {type(model).__name__}: {error}"
        ) from error


def _margin_tree_attribution(model: Any, *, sign: float, path: str) -> _Attribution:
    """Tree SHAP on the raw score, which is the margin (log-odds of classes_[1] or the value)."""
    explainer = _tree_explainer(model, path=path)
    expected = np.asarray(explainer.expected_value, dtype=np.float64).reshape(-1)
    if len(expected) != 1:
        raise UnsupportedModel(f"{path}: shap sees {len(expected)} outputs, not one raw score")
    base = sign * float(expected[0])

    def attribute(rows: np.ndarray, output: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        phi = np.asarray(explainer.shap_values(rows, check_additivity=False), dtype=np.float64)
        return np.full(len(rows), base), sign * phi.reshape(len(rows), -1)

    return attribute


TABLE_TOLERANCE = 1e-9
"""Largest difference from shap's values (relative to the largest value, at least 1) the
lookup tables may show on the reference sample before they are trusted."""


def _table_attribution(
    model: Any, shap_attribution: _Attribution, *, sign: float, reference: np.ndarray
) -> _Attribution:
    """Tree SHAP by table lookup (``fast_tree_shap``) when the tables reproduce shap's own
    values on ``reference``; rows with missing values still go to shap. Otherwise shap."""
    from decisions.engine.fast_tree_shap import compile_tree_shap

    compiled = compile_tree_shap(model)
    reference = reference[~np.isnan(reference).any(axis=1)]
    if compiled is None or not len(reference):
        return shap_attribution
    base, expected = shap_attribution(reference, np.zeros(len(reference)))  # output unused
    constant = sign * compiled.base
    phi = sign * compiled.shap_values(reference)
    scale = max(1.0, float(np.max(np.abs(expected), initial=0.0)))
    if abs(constant - base[0]) > TABLE_TOLERANCE * max(1.0, abs(base[0])) or not (
        np.max(np.abs(phi - expected), initial=0.0) <= TABLE_TOLERANCE * scale
    ):
        # Exact by construction, so a difference means a scikit-learn or shap change the
        # tables do not know: say so, and keep shap's values.
        logger.warning(
            "%s: Tree SHAP lookup tables differ from shap by up to %.3g on the reference "
            "sample; explaining with shap",
            type(model).__name__,
            float(np.max(np.abs(phi - expected), initial=0.0)),
        )
        return shap_attribution
    return _TableAttribution(compiled, constant=constant, sign=sign, fallback=shap_attribution)


@dataclass(frozen=True, eq=False)
class _TableAttribution:
    """An ``_Attribution`` from ``fast_tree_shap`` tables; rows with a missing value go to
    shap (the tables assume every split sees a number)."""

    tables: Any
    constant: float
    sign: float
    fallback: _Attribution

    def __call__(self, rows: np.ndarray, output: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        base = np.full(len(rows), self.constant)
        missing = np.isnan(rows).any(axis=1)
        if not missing.any():
            return base, self.sign * self.tables.shap_values(rows)
        # Row by row the same path whatever the batch: tables where complete, shap where not.
        phi = np.empty(rows.shape, dtype=np.float64)
        phi[~missing] = self.sign * self.tables.shap_values(rows[~missing])
        base[missing], phi[missing] = self.fallback(rows[missing], output[missing])
        return base, phi


def _probability_tree_attribution(runtime: ModelRuntime, model: Any, *, path: str) -> _Attribution:
    """Tree SHAP in probability space, rescaled per row onto the log-odds margin.

    Forests and single trees average class frequencies, so their raw output is a probability
    and no exact Tree SHAP exists for its log-odds. Each row's contributions are scaled by
    ``(logit p - logit p0) / (p - p0)``: signs, ranking and relative sizes stay the exact
    probability-space SHAP values, and they add up to the margin. The probability-space sum is
    checked against ``predict_proba`` first, so a misread tree still fails.
    """
    explainer = _tree_explainer(model, path=path)
    positive = int(runtime.positive_index or 0)
    p0 = float(np.asarray(explainer.expected_value, dtype=np.float64).reshape(-1)[positive])
    m0 = _logit(p0)
    clipped = min(max(p0, _CLIP), 1 - _CLIP)
    slope = 1.0 / (clipped * (1 - clipped))

    def attribute(rows: np.ndarray, output: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        phi = np.asarray(explainer.shap_values(rows, check_additivity=False), dtype=np.float64)
        phi = phi[..., positive] if phi.ndim == 3 else phi.reshape(len(rows), -1)
        step = phi.sum(axis=1)
        # The margin is the clipped logit of predict_proba, so its logistic is predict_proba.
        gap = np.abs(np.clip(p0 + step, _CLIP, 1 - _CLIP) - 1 / (1 + np.exp(-output)))
        if np.any(~(gap <= ADDITIVITY_TOLERANCE)):
            raise AdditivityError(
                f"{path}: SHAP probabilities miss predict_proba by up to {float(np.max(gap)):.3g}"
            )
        # Where p == p0 the contributions sum to zero and any finite scale keeps additivity;
        # the slope of the logit there keeps their sizes meaningful.
        flat = np.abs(step) < 1e-12
        scale = np.where(flat, slope, (output - m0) / np.where(flat, 1.0, step))
        return np.full(len(rows), m0), phi * scale[:, None]

    return attribute


def _apply(steps: Sequence[Any], frame: pd.DataFrame) -> Any:
    """Rows through the fitted preprocessing steps, in whatever form the model was fitted on."""
    data: Any = frame
    for step in steps:
        data = step.transform(data)
    return data


def _dense(data: Any) -> np.ndarray:
    """Dense float64 for shap: the tree explainer wants it and transformed widths are small."""
    if sp.issparse(data):
        data = data.toarray()
    return np.asarray(data, dtype=np.float64)


def _logit(p: float) -> float:
    p = min(max(p, _CLIP), 1 - _CLIP)
    return math.log(p / (1 - p))


def _json_value(value: Any) -> Any:
    """The customer's raw value as JSON can carry it: python scalars, NaN as None."""
    kind = type(value)  # the common cases first: this runs for every reason of every row
    if kind is float:
        return value if math.isfinite(value) else None
    if kind is str or kind is int or kind is bool or value is None:
        return value
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value.item()
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)
