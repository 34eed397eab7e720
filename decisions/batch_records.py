"""What the decision log records for a batch of customers whose actions are already chosen.

An optimisation run chooses every customer's action with the portfolio solver, then logs
one decision per customer with the same fields a real-time decision has: every action's
value and price-adjusted score, the chosen action, SHAP contributions of every model
behind it, up to four principal reasons and the explanation. This module builds those
records for thousands of rows at a time: one SHAP call per model per chunk instead of
one per customer.

The records equal, field for field, what ``decisions.services._evaluate`` computes for
one customer with the same chosen action; replaying a run's decision proves it
(``tests/decisions/test_optimisation_runs.py``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from decisions import runtime
from decisions.engine.decision_function import DecisionFunction, Evaluation
from decisions.services import MAX_REASONS, _num, run_choice_summary


def _reference_actions(
    function: DecisionFunction, result: Evaluation, chosen: np.ndarray
) -> np.ndarray:
    """Per row, the action risk models are explained at (see ``services._reference_action``)."""
    fallback = function.fallback_index
    if fallback is None:
        return chosen
    values = np.where(np.isfinite(result.value), result.value, -np.inf)
    values[:, fallback] = -np.inf
    best = np.argmax(values, axis=1)
    has_offer = np.isfinite(values).any(axis=1)
    return np.where((chosen == fallback) & has_offer, best, chosen)


def _adverse(function: DecisionFunction, chosen: np.ndarray) -> np.ndarray:
    """Per row, ``services._is_adverse``."""
    n = len(chosen)
    if not function.extra.get("credit_decision"):
        return np.zeros(n, dtype=bool)
    fallback = function.fallback_index
    out = np.zeros(n, dtype=bool)
    if fallback is not None:
        out |= chosen == fallback
    offers = [i for i in range(function.k) if i != fallback]
    limits = function.numeric_attributes.get("limit")
    aprs = function.numeric_attributes.get("apr")
    if limits is not None:
        out |= limits[chosen] < limits[offers].max()
    if aprs is not None:
        out |= aprs[chosen] > aprs[offers].min()
    return out


def _explain(
    function: DecisionFunction,
    customer: Mapping[str, list[Any]],
    result: Evaluation,
    chosen: np.ndarray,
) -> tuple[list[list[dict[str, Any]]], list[list[dict[str, Any]]]]:
    """Per row: the contributions of every model, and the principal reasons."""
    from decisions.engine.explain import principal_reasons_of_rows

    n = len(chosen)
    ids = function.action_ids
    rows = np.arange(n)
    adverse = _adverse(function, chosen)
    reference = _reference_actions(function, result, chosen)
    risk_index = next((i for i, p in enumerate(function.predictions) if p.risk), None)
    # Which model gives a row its reasons, and how (mirrors services._explain_models):
    # adverse credit outcomes name what raised the first risk model's score most, every
    # other decision the largest contributions of the first model.
    source = np.where(adverse & (risk_index is not None), risk_index or 0, 0)
    contributions: list[list[dict[str, Any]]] = [[] for _ in range(n)]
    reasons: list[list[dict[str, Any]]] = [[] for _ in range(n)]
    for index, prediction in enumerate(function.predictions):
        at = reference if prediction.risk else chosen
        inputs: dict[str, Any] = {c: customer[c] for c in prediction.customer_inputs}
        attributes: dict[str, list[Any]] = {}
        for name in prediction.action_inputs:
            values = function.numeric_attributes.get(name)
            if values is None:
                values = function.text_attributes[name]
            attributes[name] = values[at].tolist()
        inputs.update(attributes)
        columns = {
            name: np.asarray(values, dtype=np.float64 if _is_number_list(values) else object)
            for name, values in inputs.items()
        }
        explanation = runtime.explainer(prediction.runtime).explain_columns(
            columns, predicted=result.quantities[prediction.quantity][rows, at]
        )
        base = explanation.base_value.tolist()
        output = explanation.output.tolist()
        matrix = explanation.contributions.tolist()
        names = explanation.features
        direction = "raise" if prediction.risk else "magnitude"
        for row in range(n):
            contributions[row].append(
                {
                    "model": prediction.runtime.key,
                    "quantity": prediction.quantity,
                    "action": ids[at[row]],
                    "base_value": base[row],
                    "output": output[row],
                    "contributions": dict(zip(names, matrix[row], strict=True)),
                }
            )
        mine = np.nonzero(source == index)[0]
        if len(mine):
            found = principal_reasons_of_rows(
                explanation=explanation,
                rows=mine,
                values={name: [values[row] for row in mine] for name, values in inputs.items()},
                catalog=prediction.runtime.reason_codes,
                exclude=prediction.action_inputs,
                directions=np.where(adverse[mine], direction, "magnitude").tolist(),
                limit=MAX_REASONS,
                adverse=adverse[mine].tolist(),
            )
            for row, row_reasons in zip(mine.tolist(), found, strict=True):
                reasons[row] = row_reasons
    return contributions, reasons


def _check_finite(what: str, *arrays: np.ndarray) -> None:
    """The log's bulk writers serialise records with ``canonical_json_plain``, which would
    write NaN as null: refuse it here, as ``canonical_json`` would. (Every other float of a
    record is finite already: values and scores go through ``_num``, populations are
    checked, and SHAP values that do not add up, NaN among them, raise ``AdditivityError``.)"""
    for array in arrays:
        if not np.isfinite(np.asarray(array, dtype=np.float64)).all():
            raise ValueError(f"{what} are not all finite numbers")


def _json_numbers(array: np.ndarray) -> list[Any]:
    """``_num`` of every element, as nested lists, in a few array passes (a run's every
    action's value and score: ``_num`` per element was a third of building the records)."""
    numbers = np.asarray(array, dtype=np.float64) + 0.0  # -0.0 -> 0.0
    finite = np.isfinite(numbers)
    if finite.all():
        return numbers.tolist()
    return np.where(finite, numbers, None).tolist()


def _is_number_list(values: Sequence[Any]) -> bool:
    return all(isinstance(v, int | float) and not isinstance(v, bool) for v in values[:1])


def failed_rule_combinations(
    failed_rules: Mapping[str, np.ndarray], n: int, k: int
) -> tuple[list[list[str]], np.ndarray]:
    """Which rules each (row, action) fails, as the few distinct combinations (each a
    sorted list of rule names) and, per row and action, the index of its combination
    (an (n, k) integer array)."""
    rule_names = list(failed_rules)
    if not rule_names:
        return [[]], np.zeros((n, k), dtype=np.int64)
    masks = [np.asarray(m, dtype=bool).reshape(n, k) for m in failed_rules.values()]
    if len(rule_names) < 63:
        # Each pair's failed rules as one integer, bit j for rule j: a 1-D unique is far
        # cheaper than the unique rows of a boolean matrix.
        code = np.zeros((n, k), dtype=np.int64)
        for j, mask in enumerate(masks):
            code |= mask.astype(np.int64) << j
        codes, which = np.unique(code, return_inverse=True)
        combinations = [[bool(c >> j & 1) for j in range(len(rule_names))] for c in codes.tolist()]
    else:
        stacked = np.stack(masks, -1).reshape(-1, len(rule_names))
        unique_rows, which = np.unique(stacked, axis=0, return_inverse=True)
        combinations = unique_rows.tolist()
    named = [
        sorted(name for name, failed in zip(rule_names, combo, strict=True) if failed)
        for combo in combinations
    ]
    return named, which.reshape(n, k)


def _ineligible_lists(function: DecisionFunction, result: Evaluation, n: int) -> list[list[Any]]:
    """Per row, ``{"action", "rules"}`` of each ineligible action, in catalog order.

    Most rows share their pattern (which actions fail which rules), so each distinct
    pattern's list is built once and shared: the same object serialises the same.
    """
    named, failing = failed_rule_combinations(result.failed_rules, n, function.k)
    ids = function.action_ids
    # Per (row, action): the index of its failed-rule combination, -1 where eligible.
    pattern = np.where(result.eligible, -1, failing)
    distinct, which = np.unique(pattern, axis=0, return_inverse=True)
    lists = [
        [
            {"action": ids[k], "rules": list(named[combo])}
            for k, combo in enumerate(row)
            if combo >= 0
        ]
        for row in distinct.tolist()
    ]
    return [lists[i] for i in which.reshape(-1).tolist()]


def _explanations(
    function: DecisionFunction, result: Evaluation, chosen: np.ndarray
) -> list[dict[str, Any]]:
    """Per row, ``services._explanation`` plus the run's note when it overrode the scores."""
    n = len(chosen)
    ids = function.action_ids
    rows = np.arange(n)
    scores = result.score.copy()
    scores[rows, chosen] = -np.inf
    has_runner = np.isfinite(scores).any(axis=1).tolist()
    runner = np.argmax(scores, axis=1).tolist()
    # Python lists: indexing them per row is far cheaper than numpy scalar indexing.
    value, score = result.value.tolist(), result.score.tolist()
    ineligible = _ineligible_lists(function, result, n)
    priced = [
        (lim, float(result.prices[m]), result.usage[m].tolist())
        for m, lim in enumerate(function.limits)
        if result.prices[m] > 0
    ]
    out: list[dict[str, Any]] = []
    for row, c in enumerate(chosen.tolist()):
        text_chosen = ids[c]
        entry: dict[str, Any] = {
            "chosen": {
                "action": text_chosen,
                "value": _num(value[row][c]),
                "score": _num(score[row][c]),
            },
            "runner_up": None,
            "price_effects": [],
            "ineligible": ineligible[row],
        }
        if not has_runner[row]:
            entry["summary"] = f"{text_chosen} was the only eligible action."
            out.append(entry)
            continue
        r = runner[row]
        effects = []
        for limit, price, usage in priced:
            used_chosen, used_runner = usage[row][c], usage[row][r]
            effects.append(
                {
                    "limit": limit.name,
                    "price": _num(price),
                    "usage_chosen": _num(used_chosen),
                    "usage_runner_up": _num(used_runner),
                    "effect": _num(price * (used_runner - used_chosen)),
                }
            )
        effects.sort(key=lambda e: -(e["effect"] or 0))
        entry["runner_up"] = {
            "action": ids[r],
            "value": _num(value[row][r]),
            "score": _num(score[row][r]),
        }
        entry["price_effects"] = effects
        v_chosen, v_runner = value[row][c], value[row][r]
        if v_runner > v_chosen and effects and (effects[0]["effect"] or 0) > 0:
            entry["summary"] = (
                f"The {effects[0]['limit']}'s price made {ids[r]} worth less than "
                f"{text_chosen}, although {ids[r]} has the higher value "
                f"({v_runner:.2f} against {v_chosen:.2f})."
            )
        else:
            entry["summary"] = (
                f"{text_chosen} has the highest price-adjusted value "
                f"({score[row][c]:.2f}), ahead of {ids[r]} "
                f"({score[row][r]:.2f})."
            )
        out.append(run_choice_summary(entry))
    return out


def batch_records(
    function: DecisionFunction,
    customer: Mapping[str, list[Any]],
    result: Evaluation,
    chosen: np.ndarray,
) -> list[dict[str, Any]]:
    """The logged record of every row of ``result`` with its ``chosen`` action.

    ``customer`` holds the customer's inputs as Python lists (what the log stores).
    """
    chosen = np.asarray(chosen, dtype=np.int64)
    _check_finite(
        "the chosen actions' values and the prices",
        result.value[np.arange(len(chosen)), chosen],
        result.prices,
    )
    contributions, reasons = _explain(function, customer, result, chosen)
    explanations = _explanations(function, result, chosen)
    ids = function.action_ids
    value = result.value
    prices = {
        lim.name: float(p) for lim, p in zip(function.limits, result.prices.tolist(), strict=True)
    }
    attributes = [function.action_attributes(k) for k in range(function.k)]
    eligible = result.eligible.tolist()
    values = _json_numbers(value)
    scores = _json_numbers(result.score)
    records = []
    for row, c in enumerate(chosen.tolist()):
        records.append(
            {
                "actions": [
                    {"action": action, "eligible": ok, "value": v, "score": s}
                    for action, ok, v, s in zip(
                        ids, eligible[row], values[row], scores[row], strict=True
                    )
                ],
                "action_id": ids[c],
                "action": dict(attributes[c]),
                "value": float(values[row][c]) + 0.0,
                "prices": prices,
                "reasons": reasons[row],
                "contributions": contributions[row],
                "explanation": explanations[row],
            }
        )
    return records
