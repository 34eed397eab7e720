"""A small synthetic cross-sell portfolio for the demo and the tests.

It trains a real scikit-learn pipeline (scaling + one-hot + logistic regression) on
simulated take-up, and writes the model version content the registry expects: schema,
metrics, training fingerprint, reference sample and reason codes. The full portfolio
simulator of the decision-engine work builds on the same shapes.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import skops.io as sio
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

REGIONS = ["north", "south", "east", "west"]
SCHEMA: list[dict[str, Any]] = [
    {"name": "income", "type": "numeric", "min": 0, "max": 1_000_000, "required": True},
    {"name": "utilisation", "type": "numeric", "min": 0, "max": 1.5, "required": True},
    {"name": "months_on_book", "type": "numeric", "min": 0, "max": 600, "required": True},
    {"name": "delinquencies", "type": "numeric", "min": 0, "max": 50, "required": True},
    {"name": "region", "type": "categorical", "categories": REGIONS, "required": True},
]
REASON_CODES = {
    "income": {"code": "TU01", "text": "Income level"},
    "utilisation": {"code": "TU02", "text": "Proportion of existing credit limits in use"},
    "months_on_book": {"code": "TU03", "text": "Length of relationship with the bank"},
    "delinquencies": {"code": "TU04", "text": "Number of recent late payments"},
    "region": {"code": "TU05", "text": "Region of residence"},
}


def synthetic_customers(n: int, *, seed: int = 7) -> pd.DataFrame:
    """``n`` customers with plausible, correlated features."""
    rng = np.random.default_rng(seed)
    income = np.round(np.exp(rng.normal(10.6, 0.5, n)), -2).clip(5_000, 900_000)
    utilisation = rng.beta(2, 3, n).round(3)
    months = rng.integers(0, 360, n)
    delinquencies = rng.poisson(0.3 + 1.5 * utilisation, n).clip(0, 50)
    region = rng.choice(REGIONS, n, p=[0.3, 0.3, 0.2, 0.2])
    return pd.DataFrame(
        {
            "income": income.astype(float),
            "utilisation": utilisation.astype(float),
            "months_on_book": months.astype(float),
            "delinquencies": delinquencies.astype(float),
            "region": region.astype(object),
        }
    )


def simulated_take_up(customers: pd.DataFrame, *, seed: int = 11) -> np.ndarray:
    """Ground truth: who accepts a cross-sell offer (0/1)."""
    rng = np.random.default_rng(seed)
    logit = (
        -1.2
        + 0.8 * (np.log(customers["income"]) - 10.6)
        - 1.5 * customers["utilisation"]
        + 0.004 * customers["months_on_book"]
        - 0.4 * customers["delinquencies"]
        + customers["region"].map({"north": 0.2, "south": 0.0, "east": -0.2, "west": 0.1})
    )
    return (rng.random(len(customers)) < 1 / (1 + np.exp(-logit))).astype(int)


def take_up_model(*, rows: int = 4_000, seed: int = 7) -> tuple[Pipeline, dict[str, Any]]:
    """Train the take-up model; returns it with the model version content to register."""
    customers = synthetic_customers(rows, seed=seed)
    accepted = simulated_take_up(customers, seed=seed + 4)
    split = int(rows * 0.8)
    numeric = [f["name"] for f in SCHEMA if f["type"] == "numeric"]
    pipeline = Pipeline(
        [
            (
                "prepare",
                ColumnTransformer(
                    [
                        ("scale", StandardScaler(), numeric),
                        ("region", OneHotEncoder(handle_unknown="ignore"), ["region"]),
                    ]
                ),
            ),
            ("classify", LogisticRegression(max_iter=1000)),
        ]
    )
    pipeline.fit(customers.iloc[:split], accepted[:split])
    holdout = pipeline.predict_proba(customers.iloc[split:])[:, 1]
    extract = customers.assign(accepted=accepted).to_csv(index=False).encode()
    reference = customers.iloc[split : split + 300]
    content = {
        "description": "Probability that a customer accepts a cross-sell offer.",
        "schema": SCHEMA,
        "output": {"type": "probability", "positive_class": 1},
        "metrics": {
            "auc": round(float(roc_auc_score(accepted[split:], holdout)), 4),
            "take_up_rate": round(float(accepted.mean()), 4),
        },
        "training_data": {
            "rows": split,
            "period": {"start": "2025-01-01", "end": "2025-12-31"},
            "hash": hashlib.sha256(extract).hexdigest(),
            "source": "synthetic cross-sell history (decisions.demo_portfolio)",
        },
        "reference_sample": {
            "columns": list(reference.columns),
            "rows": reference.astype(object).values.tolist(),
        },
        "reason_codes": REASON_CODES,
    }
    return pipeline, content


def write_skops(estimator: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sio.dump(estimator, path)
    return path


def cross_sell_strategy(*, model_name: str, model_version: int, revision: int = 1) -> dict:
    """Offer nothing, a card or a loan; revision 2 adds a premium card."""
    actions = [
        {"id": "none", "label": "No offer", "attributes": {"limit": 0, "apr": 0.0, "cost": 0}},
        {
            "id": "card",
            "label": "Credit card",
            "attributes": {"limit": 3000, "apr": 0.24, "cost": 4},
        },
        {
            "id": "loan",
            "label": "Personal loan",
            "attributes": {"limit": 8000, "apr": 0.11, "cost": 9},
        },
    ]
    if revision >= 2:
        actions.append(
            {
                "id": "premium-card",
                "label": "Premium card",
                "attributes": {"limit": 10000, "apr": 0.19, "cost": 15},
            }
        )
    return {
        "use_case": "cross-sell",
        "description": "Which product, if any, to offer each existing customer.",
        "actions": actions,
        "fallback_action": "none",
        "predictions": [
            {"quantity": "p_accept", "model": {"name": model_name, "version": model_version}}
        ],
        "value": "p_accept * apr * limit * 0.5 - cost",
        "eligibility": [
            {
                "name": "affordable",
                "rule": "limit <= 0.25 * income",
                "description": "The limit may not exceed a quarter of annual income.",
            },
            {
                "name": "no_recent_arrears",
                "rule": "delinquencies < 3 or limit == 0",
                "description": "Customers with three or more late payments get no offer.",
            },
        ],
    }


def cross_sell_constraints(*, strategy_name: str) -> dict:
    return {
        "strategy": strategy_name,
        "description": "Quarterly cross-sell limits.",
        "portfolio": [
            {
                "name": "marketing_budget",
                "expression": "cost",
                "sense": "<=",
                "bound": 25000,
                "description": "Marketing spend per quarter",
            },
            {
                "name": "new_exposure",
                "expression": "p_accept * limit",
                "sense": "<=",
                "bound": 5_000_000,
                "description": "Expected new credit exposure",
            },
        ],
        "rules": [
            {"name": "apr_cap", "rule": "apr <= 0.36", "description": "Regulatory APR cap"},
        ],
    }
