"""A strategy, its constraint set and its models compiled into one function on arrays.

N customers x K actions in, one choice per customer out::

    features (N per column) -> quantities (N, K), one vectorised predict per model
                            -> value (N, K), usage (M, N, K), eligible (N, K)
                            -> score = value - prices . usage -> choice (N,)

Portfolio limits are kept in "<=" form: a ``>=`` limit is stored negated (usage and
bound), so prices are always >= 0 and the optimiser and real time read them alike. The
web request, the Celery job and the benchmarks all call ``DecisionFunction.evaluate``.
No Django here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from decisions.engine.expressions import Expression, parse_expression
from decisions.engine.predictors import ModelRuntime

NO_ACTION = -1


class CompileError(ValueError):
    """The strategy, constraint set and models do not fit together."""


@dataclass(frozen=True)
class Prediction:
    quantity: str
    runtime: ModelRuntime
    action_inputs: tuple[str, ...]
    customer_inputs: tuple[str, ...]
    risk: bool = False
    """A risk model: its reasons explain adverse credit outcomes (Regulation B)."""


@dataclass(frozen=True)
class Limit:
    """``sum over customers of expression(chosen action) sense bound``."""

    name: str
    expression: Expression
    sense: str
    bound: float
    description: str = ""

    @property
    def sign(self) -> float:
        """+1 for "<=", -1 for ">=": multiply usage and bound by it to get "<=" form."""
        return 1.0 if self.sense == "<=" else -1.0


@dataclass(frozen=True)
class Rule:
    name: str
    expression: Expression
    source: str
    """``strategy`` (eligibility) or ``constraint_set`` (per-decision rule)."""
    description: str = ""


@dataclass
class Evaluation:
    """Everything the engine computed for a batch; arrays are (N, K) unless noted."""

    action_ids: list[str]
    quantities: dict[str, np.ndarray]
    value: np.ndarray
    usage: np.ndarray
    """(M, N, K) in "<=" form (``>=`` limits negated)."""
    eligible: np.ndarray
    failed_rules: dict[str, np.ndarray]
    """rule name -> (N, K) bool, True where the rule made the action ineligible."""
    prices: np.ndarray
    score: np.ndarray
    choice: np.ndarray
    """(N,) index of the chosen action, ``NO_ACTION`` when none is eligible."""

    @property
    def n(self) -> int:
        return int(self.value.shape[0])

    def chosen_value(self) -> np.ndarray:
        rows = np.arange(self.n)
        safe = np.where(self.choice == NO_ACTION, 0, self.choice)
        return np.where(self.choice == NO_ACTION, np.nan, self.value[rows, safe])


@dataclass(frozen=True)
class DecisionFunction:
    action_ids: list[str]
    numeric_attributes: dict[str, np.ndarray]
    """name -> (K,) float64 (booleans as 0/1)."""
    text_attributes: dict[str, np.ndarray]
    """name -> (K,) object: usable as model inputs, not in expressions."""
    action_labels: list[str]
    fallback_index: int | None
    predictions: list[Prediction]
    value: Expression
    limits: list[Limit]
    rules: list[Rule]
    features: dict[str, dict[str, Any]]
    """Every customer input a request must carry: name -> feature schema entry."""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def k(self) -> int:
        return len(self.action_ids)

    @property
    def m(self) -> int:
        return len(self.limits)

    def limit_bounds(self) -> np.ndarray:
        """(M,) bounds in "<=" form."""
        return np.array([lim.sign * lim.bound for lim in self.limits], dtype=np.float64)

    def action_attributes(self, index: int) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, values in self.numeric_attributes.items():
            out[name] = values[index].item()
        for name, values in self.text_attributes.items():
            out[name] = values[index]
        return out

    def evaluate(
        self, features: Mapping[str, Any], *, prices: Sequence[float] | np.ndarray | None = None
    ) -> Evaluation:
        """Score N customers on every action and choose one each.

        ``features`` maps each customer input to an array of length N (numeric or text).
        ``prices`` are the limits' dual prices (M,), zeros when None. Ineligible actions
        score -inf; ties go to the earlier action in the catalog, so results do not depend
        on batch size.
        """
        columns = {name: np.asarray(features[name]) for name in self.features}
        n = _batch_size(columns)
        k = self.k
        quantities = {p.quantity: self._predict(p, columns, n) for p in self.predictions}

        env: dict[str, Any] = {}
        for name, spec in self.features.items():
            if spec["type"] == "numeric":
                env[name] = columns[name].astype(np.float64).reshape(n, 1)
        for name, values in self.numeric_attributes.items():
            env[name] = values.reshape(1, k)
        env.update(quantities)

        value = _grid(self.value.evaluate(env), n, k).astype(np.float64)
        usage = np.empty((self.m, n, k), dtype=np.float64)
        for i, limit in enumerate(self.limits):
            usage[i] = limit.sign * _grid(limit.expression.evaluate(env), n, k)

        eligible = np.ones((n, k), dtype=bool)
        failed: dict[str, np.ndarray] = {}
        for rule in self.rules:
            passed = _grid(rule.expression.evaluate(env), n, k).astype(bool)
            failed[rule.name] = ~passed
            eligible &= passed
        eligible &= np.isfinite(value) & np.all(np.isfinite(usage), axis=0)
        if self.fallback_index is not None:
            eligible[:, self.fallback_index] = True
            value[:, self.fallback_index] = np.nan_to_num(value[:, self.fallback_index])

        price_vector = (
            np.zeros(self.m, dtype=np.float64)
            if prices is None
            else np.asarray(prices, dtype=np.float64).reshape(self.m)
        )
        if np.any(price_vector < 0) or not np.all(np.isfinite(price_vector)):
            raise ValueError("prices must be finite and >= 0")
        score = value - np.tensordot(price_vector, usage, axes=1) if self.m else value.copy()
        score = np.where(eligible, score, -np.inf)
        choice = np.argmax(score, axis=1)
        choice = np.where(eligible.any(axis=1), choice, NO_ACTION)
        return Evaluation(
            action_ids=self.action_ids,
            quantities=quantities,
            value=value,
            usage=usage,
            eligible=eligible,
            failed_rules=failed,
            prices=price_vector,
            score=score,
            choice=choice,
        )

    def _predict(
        self, prediction: Prediction, columns: Mapping[str, np.ndarray], n: int
    ) -> np.ndarray:
        """(N, K) predictions: one predict over N rows, or N x K rows with action inputs."""
        k = self.k
        runtime = prediction.runtime
        if not prediction.action_inputs:
            out = runtime.predict_columns({c: columns[c] for c in prediction.customer_inputs})
            return np.repeat(out.reshape(n, 1), k, axis=1)
        inputs: dict[str, Any] = {c: np.repeat(columns[c], k) for c in prediction.customer_inputs}
        for name in prediction.action_inputs:
            values = self.numeric_attributes.get(name)
            if values is None:
                values = self.text_attributes[name]
            inputs[name] = np.tile(values, n)
        return runtime.predict_columns(inputs).reshape(n, k)


def _grid(array: Any, n: int, k: int) -> np.ndarray:
    """An expression's result as (n, k): most already are; others broadcast (a view)."""
    return array if np.shape(array) == (n, k) else np.broadcast_to(array, (n, k))


def _batch_size(columns: Mapping[str, np.ndarray]) -> int:
    sizes = {int(np.size(v)) for v in columns.values()}
    if len(sizes) > 1:
        raise ValueError(f"feature columns have different lengths: {sorted(sizes)}")
    return sizes.pop() if sizes else 0


def compile_decision_function(
    *,
    strategy: Mapping[str, Any],
    constraints: Mapping[str, Any] | None,
    runtimes: Mapping[tuple[str, int], ModelRuntime],
) -> DecisionFunction:
    """Compile validated strategy and constraint-set content with loaded model versions.

    ``runtimes`` maps (model name, version) to the loaded model. Raises ``CompileError``
    when they do not fit (a model feature typed differently by two models, a constraint
    set written for another strategy, a name the strategy does not define).
    """
    actions = list(strategy["actions"])
    action_ids = [a["id"] for a in actions]
    numeric: dict[str, np.ndarray] = {}
    text: dict[str, np.ndarray] = {}
    for name in actions[0]["attributes"]:
        values = [a["attributes"][name] for a in actions]
        if all(isinstance(v, str) for v in values):
            text[name] = np.array(values, dtype=object)
        else:
            numeric[name] = np.array([float(v) for v in values], dtype=np.float64)
    fallback = strategy.get("fallback_action")
    fallback_index = action_ids.index(fallback) if fallback is not None else None

    features: dict[str, dict[str, Any]] = {}

    def add_feature(spec: Mapping[str, Any], source: str) -> None:
        existing = features.get(spec["name"])
        if existing is not None and existing["type"] != spec["type"]:
            raise CompileError(
                f"feature {spec['name']!r} is {existing['type']} for one model and "
                f"{spec['type']} for {source}"
            )
        if existing is None:
            features[spec["name"]] = dict(spec)

    predictions: list[Prediction] = []
    for entry in strategy.get("predictions", []):
        key = (entry["model"]["name"], int(entry["model"]["version"]))
        runtime = runtimes.get(key)
        if runtime is None:
            raise CompileError(f"model {key[0]} v{key[1]} was not loaded")
        action_inputs = tuple(entry.get("action_inputs", []))
        customer_inputs = tuple(c for c in runtime.input_columns if c not in action_inputs)
        for spec in runtime.schema:
            if spec["name"] in customer_inputs:
                add_feature(spec, runtime.key)
        predictions.append(
            Prediction(
                entry["quantity"],
                runtime,
                action_inputs,
                customer_inputs,
                risk=bool(entry.get("risk", False)),
            )
        )
    for spec in strategy.get("extra_features", []):
        add_feature(spec, "the strategy's extra features")

    names = (
        set(numeric)
        | {p.quantity for p in predictions}
        | {n for n, s in features.items() if s["type"] == "numeric"}
    )

    def parse(source: str, where: str) -> Expression:
        try:
            return parse_expression(source, allowed_names=names)
        except ValueError as exc:
            raise CompileError(f"{where}: {exc}") from exc

    rules = [
        Rule(
            r["name"],
            parse(r["rule"], f"eligibility {r['name']}"),
            "strategy",
            r.get("description", ""),
        )
        for r in strategy.get("eligibility", [])
    ]
    limits: list[Limit] = []
    if constraints is not None:
        rules += [
            Rule(
                r["name"],
                parse(r["rule"], f"rule {r['name']}"),
                "constraint_set",
                r.get("description", ""),
            )
            for r in constraints.get("rules", [])
        ]
        limits = [
            Limit(
                lim["name"],
                parse(lim["expression"], f"limit {lim['name']}"),
                lim["sense"],
                float(lim["bound"]),
                lim.get("description", ""),
            )
            for lim in constraints.get("portfolio", [])
        ]
    return DecisionFunction(
        action_ids=action_ids,
        numeric_attributes=numeric,
        text_attributes=text,
        action_labels=[a.get("label", a["id"]) for a in actions],
        fallback_index=fallback_index,
        predictions=predictions,
        value=parse(strategy["value"], "value"),
        limits=limits,
        rules=rules,
        features=features,
        extra={"credit_decision": bool(strategy.get("credit_decision", False))},
    )
