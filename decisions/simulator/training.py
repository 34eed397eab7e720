"""Simulated history and the scikit-learn pipelines trained on it, with registry content.

History is what a bank would have if it had tested its action catalog at random on past
customers (a randomised champion/challenger programme): every model that takes action
attributes as inputs can then learn the response to them without the confounding of a
past policy. Outcomes are drawn from ``behaviour``.

Pipelines use only the preprocessing the SHAP explainer understands (``StandardScaler``
or ``passthrough`` for numbers, ``OneHotEncoder`` with the schema's categories for text)
and are fitted on pandas frames, so ``feature_names_in_`` is what the registry checks the
schema against. Each model comes back with the model version content the registry
validates: schema, output, holdout metrics, training fingerprint, reference sample and a
reason code for every input.

Sizes are chosen so that all six models of the three use cases train in a few seconds
on two cores: the demo and the tests train them from scratch.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import brier_score_loss, mean_absolute_error, r2_score, roc_auc_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from threadpoolctl import threadpool_limits

from decisions.simulator import behaviour
from decisions.simulator.population import USE_CASES, customers, feature_schema

TrainedModel = tuple[Pipeline, dict[str, Any]]

REFERENCE_ROWS: Final = 300
HOLDOUT_SHARE: Final = 0.25

#: Schema entries of the action attributes models take as inputs. Ranges cover the
#: fallback actions (limit 0, hour 0, product and channel "none").
ACTION_FEATURES: Final[dict[str, dict[str, Any]]] = {
    "limit": {"type": "numeric", "min": 0, "max": 50_000, "description": "Credit limit offered"},
    "apr": {"type": "numeric", "min": 0, "max": 1, "description": "APR offered"},
    "product": {
        "type": "categorical",
        "categories": ["none", *behaviour.CROSS_SELL_PRODUCTS],
        "description": "Product offered",
    },
    "channel": {
        "type": "categorical",
        "categories": ["none", *behaviour.COLLECTION_CHANNELS],
        "description": "Contact channel",
    },
    "hour": {"type": "numeric", "min": 0, "max": 23, "description": "Hour of contact (0: none)"},
    "discount": {
        "type": "numeric",
        "min": 0,
        "max": 0.5,
        "description": "Settlement discount offered",
    },
}

#: Customer-facing reason texts, in the style of Regulation B's sample adverse-action
#: reasons, for every feature a model may take.
REASON_TEXTS: Final[dict[str, str]] = {
    "income": "Income insufficient for amount of credit requested",
    "months_on_book": "Length of relationship with us",
    "num_products": "Number of accounts held with us",
    "utilisation": "Proportion of balances to credit limits is too high on revolving accounts",
    "bureau_score": "Credit bureau score too low",
    "debt_to_income": "Debt-to-income ratio too high",
    "delinquencies": "Delinquent past or present credit obligations with others",
    "employment_type": "Type or stability of employment",
    "limit": "Amount of credit requested",
    "apr": "Price of the credit offered (APR)",
    "product": "Type of product offered",
    "balance": "Amount of balance outstanding",
    "days_past_due": "Length of time the account has been past due",
    "payments_made_12m": "Number of payments made in the last 12 months",
    "broken_promises": "Previous promises to pay not kept",
    "contacts_last_7d": "Number of recent contacts from us",
    "preferred_channel": "Contact channel you prefer",
    "channel": "Channel used to contact you",
    "hour": "Time of day of the contact",
    "discount": "Settlement discount offered",
}

# The same factors named without judgement, for decisions that are not adverse (an offer,
# a collections treatment): "Income insufficient ..." on an approval would read as wrong.
REASON_FACTORS: Final[dict[str, str]] = {
    "income": "Income",
    "months_on_book": "Length of relationship with us",
    "num_products": "Number of accounts held with us",
    "utilisation": "Proportion of balances to credit limits on revolving accounts",
    "bureau_score": "Credit bureau score",
    "debt_to_income": "Debt-to-income ratio",
    "delinquencies": "Past or present delinquencies on credit obligations with others",
    "employment_type": "Type of employment",
    "limit": "Amount of credit offered",
    "apr": "Price of the credit offered (APR)",
    "product": "Type of product offered",
    "balance": "Amount of balance outstanding",
    "days_past_due": "Length of time the account has been past due",
    "payments_made_12m": "Number of payments made in the last 12 months",
    "broken_promises": "Previous promises to pay",
    "contacts_last_7d": "Number of recent contacts from us",
    "preferred_channel": "Contact channel you prefer",
    "channel": "Channel used to contact you",
    "hour": "Time of day of the contact",
    "discount": "Settlement discount offered",
}


@dataclass(frozen=True)
class ModelSpec:
    """What one model is: its inputs, target, estimator family and provenance."""

    name: str
    description: str
    customer_features: tuple[str, ...]
    action_inputs: tuple[str, ...]
    target: str
    estimator: str
    """``tree`` (gradient boosting on raw numbers) or ``linear`` (scaled numbers)."""
    output: str
    """``probability`` or ``regression``."""
    code_prefix: str
    period: tuple[str, str]
    source: str

    @property
    def inputs(self) -> tuple[str, ...]:
        return self.customer_features + self.action_inputs


SPECS: Final[dict[str, ModelSpec]] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            name="onboarding-pd",
            description=(
                "Probability that a new card account defaults within 12 months of booking, "
                "given the limit and APR offered (gradient boosting)."
            ),
            customer_features=(
                "bureau_score",
                "debt_to_income",
                "delinquencies",
                "utilisation",
                "income",
                "months_on_book",
                "employment_type",
            ),
            action_inputs=("limit", "apr"),
            target="defaulted",
            estimator="tree",
            output="probability",
            code_prefix="OPD",
            period=("2023-07-01", "2024-06-30"),
            source="synthetic booked card accounts from randomised limit/APR tests "
            "(decisions.simulator)",
        ),
        ModelSpec(
            name="onboarding-take-up",
            description=(
                "Probability that an approved applicant activates the card, given the limit "
                "and APR offered (logistic regression)."
            ),
            customer_features=(
                "bureau_score",
                "utilisation",
                "delinquencies",
                "income",
                "num_products",
                "months_on_book",
                "employment_type",
            ),
            action_inputs=("apr", "limit"),
            target="taken_up",
            estimator="linear",
            output="probability",
            code_prefix="OTU",
            period=("2023-07-01", "2024-06-30"),
            source="synthetic card offers from randomised limit/APR tests (decisions.simulator)",
        ),
        ModelSpec(
            name="cross-sell-take-up",
            description=(
                "Probability that an existing customer opens the product offered within "
                "the campaign window; 'none' is the untreated control (gradient boosting)."
            ),
            customer_features=(
                "income",
                "bureau_score",
                "utilisation",
                "debt_to_income",
                "delinquencies",
                "months_on_book",
                "num_products",
                "employment_type",
            ),
            action_inputs=("product",),
            target="taken_up",
            estimator="tree",
            output="probability",
            code_prefix="XTU",
            period=("2024-01-01", "2024-12-31"),
            source="synthetic cross-sell campaigns with random product assignment "
            "(decisions.simulator)",
        ),
        ModelSpec(
            name="cross-sell-pd",
            description=(
                "Probability that a customer defaults within 12 months on the credit "
                "product booked (logistic regression)."
            ),
            customer_features=(
                "bureau_score",
                "debt_to_income",
                "delinquencies",
                "utilisation",
                "income",
                "months_on_book",
                "employment_type",
            ),
            action_inputs=("product",),
            target="defaulted",
            estimator="linear",
            output="probability",
            code_prefix="XPD",
            period=("2023-01-01", "2024-12-31"),
            source="synthetic existing credit book (decisions.simulator)",
        ),
        ModelSpec(
            name="collections-payment",
            description=(
                "Probability that a customer in arrears pays within 30 days, given the "
                "channel, hour and settlement discount of the contact (gradient boosting)."
            ),
            customer_features=(
                "balance",
                "days_past_due",
                "payments_made_12m",
                "broken_promises",
                "contacts_last_7d",
                "bureau_score",
                "income",
                "employment_type",
                "preferred_channel",
            ),
            action_inputs=("channel", "hour", "discount"),
            target="paid",
            estimator="tree",
            output="probability",
            code_prefix="CPY",
            period=("2025-01-01", "2025-06-30"),
            source="synthetic collections contacts with randomised treatments "
            "(decisions.simulator)",
        ),
        ModelSpec(
            name="collections-recovery",
            description=(
                "Share of the (discounted) balance paid by a customer who pays, given the "
                "settlement discount (gradient boosting regression)."
            ),
            customer_features=("balance", "income", "payments_made_12m", "days_past_due"),
            action_inputs=("discount",),
            target="payment_share",
            estimator="tree",
            output="regression",
            code_prefix="CRC",
            period=("2025-01-01", "2025-06-30"),
            source="synthetic collections payments (decisions.simulator)",
        ),
    )
}

MODELS_BY_USE_CASE: Final[dict[str, tuple[str, ...]]] = {
    "onboarding": ("onboarding-pd", "onboarding-take-up"),
    "cross-sell": ("cross-sell-take-up", "cross-sell-pd"),
    "collections": ("collections-payment", "collections-recovery"),
}

#: History sizes: enough events for a stable holdout AUC, small enough to train in seconds.
HISTORY_ROWS: Final = {"onboarding": 14_000, "cross-sell": 16_000, "collections": 16_000}
CREDIT_BOOK_ROWS: Final = 10_000


def history(use_case: str, *, rows: int, seed: int) -> pd.DataFrame:
    """Past customers, the action each was randomly given, and what happened.

    Onboarding: approved applicants with a random limit/APR (declined applicants have no
    outcome). Cross-sell: a random product or the untreated control group (10%).
    Collections: a random contact or no contact (10%). Columns: the customer's, the
    action's attributes (plus ``action_id``) and the sampled outcomes.
    """
    people = customers(use_case, rows, seed=seed)
    catalog = behaviour.action_catalog(use_case)
    rng = np.random.default_rng([seed, 1])
    if use_case == "onboarding":
        offers = [a["id"] for a in catalog[1:]]
        chosen = rng.choice(np.array(offers, dtype=object), rows)
    else:
        treated = [a["id"] for a in catalog[1:]]
        control = rng.random(rows) < 0.1
        chosen = np.where(
            control, catalog[0]["id"], rng.choice(np.array(treated, dtype=object), rows)
        )
    actions = behaviour.action_frame(use_case, list(chosen))
    outcomes = behaviour.outcomes_sample(use_case, people, actions, seed=seed + 1)
    frame = pd.concat(
        [people, actions.drop(columns=[c for c in actions if c in people]), outcomes], axis=1
    )
    frame.insert(len(people.columns), "action_id", chosen.astype(object))
    if use_case == "collections":
        due = frame["balance"] * (1.0 - frame["discount"])
        frame["payment_share"] = np.where(
            frame["paid"] == 1, (frame["amount_recovered"] / due).clip(0, 1), np.nan
        )
    return frame


def credit_book(*, rows: int, seed: int) -> pd.DataFrame:
    """Existing cross-sell customers with a random credit product and whether they defaulted."""
    people = customers("cross-sell", rows, seed=seed)
    rng = np.random.default_rng([seed, 2])
    product = rng.choice(np.array(behaviour.CREDIT_PRODUCTS, dtype=object), rows)
    probability = behaviour.cross_sell_default_probability(people, product=product)
    defaulted = (rng.random(rows) < probability).astype(np.int64)
    return people.assign(product=product, defaulted=defaulted)


def train_models(use_case: str, *, seed: int) -> dict[str, TrainedModel]:
    """Every model of ``use_case``: name -> (fitted pipeline, model version content)."""
    if use_case not in USE_CASES:
        raise ValueError(f"unknown use case {use_case!r}; one of {', '.join(USE_CASES)}")
    past = history(use_case, rows=HISTORY_ROWS[use_case], seed=seed)
    if use_case == "onboarding":
        booked = past[past["taken_up"] == 1].reset_index(drop=True)
        frames = {"onboarding-pd": booked, "onboarding-take-up": past}
    elif use_case == "cross-sell":
        frames = {
            "cross-sell-take-up": past,
            "cross-sell-pd": credit_book(rows=CREDIT_BOOK_ROWS, seed=seed + 100),
        }
    else:
        paid = past[past["paid"] == 1].reset_index(drop=True)
        frames = {"collections-payment": past, "collections-recovery": paid}
    return {
        name: model_train(SPECS[name], frames[name], seed=seed)
        for name in MODELS_BY_USE_CASE[use_case]
    }


def model_train(spec: ModelSpec, frame: pd.DataFrame, *, seed: int) -> TrainedModel:
    """Fit ``spec`` on ``frame`` (75% train, 25% holdout) and describe it for the registry."""
    schema = model_schema(spec)
    inputs = list(spec.inputs)
    data = frame[inputs].copy()
    for feature in schema:
        kind = np.float64 if feature["type"] == "numeric" else object
        data[feature["name"]] = data[feature["name"]].astype(kind)
    target = frame[spec.target].to_numpy()
    order = np.random.default_rng([seed, 3]).permutation(len(frame))
    cut = int(len(frame) * (1.0 - HOLDOUT_SHARE))
    train, holdout = order[:cut], order[cut:]

    pipeline = _pipeline(schema, estimator=spec.estimator, output=spec.output, seed=seed)
    # One OpenMP thread: on a shared two-core machine (web, worker and a training run side
    # by side) gradient boosting's threads spin at every barrier and a one-second fit took
    # over ten times as long; on this data a single thread is as fast as two idle cores.
    with threadpool_limits(limits=1, user_api="openmp"):
        pipeline.fit(data.iloc[train], target[train])
        if spec.output == "probability":
            predicted = pipeline.predict_proba(data.iloc[holdout])[:, 1]
            metrics = classification_metrics(target[holdout], predicted)
        else:
            predicted = pipeline.predict(data.iloc[holdout])
            metrics = regression_metrics(target[holdout], predicted)
    metrics["holdout_rows"] = len(holdout)

    extract = data.iloc[train].assign(**{spec.target: target[train]})
    reference = data.iloc[holdout[:REFERENCE_ROWS]]
    content = {
        "description": spec.description,
        "schema": schema,
        "output": (
            {"type": "probability", "positive_class": 1}
            if spec.output == "probability"
            else {"type": "regression"}
        ),
        "metrics": metrics,
        "training_data": {
            "rows": len(train),
            "period": {"start": spec.period[0], "end": spec.period[1]},
            "hash": hashlib.sha256(extract.to_csv(index=False).encode()).hexdigest(),
            "source": spec.source,
        },
        "reference_sample": {
            "columns": inputs,
            "rows": [_plain_row(row) for row in reference.itertuples(index=False)],
        },
        "reason_codes": reason_codes(spec),
    }
    return pipeline, content


def model_schema(spec: ModelSpec) -> list[dict[str, Any]]:
    """Schema entries for the model's inputs, customer features first, in column order."""
    action = [
        {"name": name, **ACTION_FEATURES[name], "required": True} for name in spec.action_inputs
    ]
    return feature_schema(spec.customer_features) + action


def reason_codes(spec: ModelSpec) -> dict[str, dict[str, str]]:
    """A code (unique within the model), the adverse-action text and the neutral factor
    for every input."""
    return {
        name: {
            "code": f"{spec.code_prefix}{i:02d}",
            "text": REASON_TEXTS[name],
            "factor": REASON_FACTORS[name],
        }
        for i, name in enumerate(spec.inputs, start=1)
    }


def classification_metrics(observed: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """Discrimination and calibration on the holdout.

    ``calibration_in_the_large`` is mean predicted minus observed rate; ``ece`` the mean
    absolute gap between predicted and observed rates over ten equal-count bins.
    """
    bins = np.array_split(np.argsort(predicted, kind="stable"), 10)
    gaps = [abs(predicted[b].mean() - observed[b].mean()) * len(b) for b in bins if len(b)]
    return {
        "auc": round(float(roc_auc_score(observed, predicted)), 4),
        "brier": round(float(brier_score_loss(observed, predicted)), 5),
        "calibration_in_the_large": round(float(predicted.mean() - observed.mean()), 5),
        "ece": round(float(sum(gaps) / len(predicted)), 5),
        "positive_rate": round(float(observed.mean()), 4),
    }


def regression_metrics(observed: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    return {
        "rmse": round(float(np.sqrt(np.mean((observed - predicted) ** 2))), 5),
        "mae": round(float(mean_absolute_error(observed, predicted)), 5),
        "r2": round(float(r2_score(observed, predicted)), 4),
        "mean_target": round(float(observed.mean()), 4),
    }


def _pipeline(
    schema: Sequence[Mapping[str, Any]], *, estimator: str, output: str, seed: int
) -> Pipeline:
    numeric = [f["name"] for f in schema if f["type"] == "numeric"]
    categorical = [f for f in schema if f["type"] == "categorical"]
    transformers: list[tuple[str, Any, list[str]]] = [
        # Trees need no scaling; passthrough keeps SHAP values in the features' own units.
        ("numeric", StandardScaler() if estimator == "linear" else "passthrough", numeric)
    ]
    if categorical:
        transformers.append(
            (
                "categorical",
                # The schema's categories, not the training data's: a product the history
                # never booked (savings has no default) still gets its (all-zero) column.
                OneHotEncoder(
                    categories=[list(f["categories"]) for f in categorical],
                    handle_unknown="ignore",
                    sparse_output=False,
                ),
                [f["name"] for f in categorical],
            )
        )
    final: Any
    if estimator == "linear":
        final = LogisticRegression(C=1.0, max_iter=1_000)
    elif output == "probability":
        final = HistGradientBoostingClassifier(
            learning_rate=0.08,
            max_iter=150,
            max_leaf_nodes=15,
            min_samples_leaf=40,
            l2_regularization=1.0,
            early_stopping=False,
            random_state=seed,
        )
    else:
        final = HistGradientBoostingRegressor(
            learning_rate=0.08,
            max_iter=120,
            max_leaf_nodes=15,
            min_samples_leaf=40,
            l2_regularization=1.0,
            early_stopping=False,
            random_state=seed,
        )
    return Pipeline([("prepare", ColumnTransformer(transformers)), ("model", final)])


def _plain_row(row: Sequence[Any]) -> list[Any]:
    """JSON-ready values: Python floats for numbers, str for categories."""
    return [value if isinstance(value, str) else float(value) for value in row]
