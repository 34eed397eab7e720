"""Synthetic customers for each use case, with the feature catalog their models share.

Every customer starts from one hidden credit quality that moves income, bureau score,
arrears, utilisation and debt-to-income together, as they move in a real book: a tidy
independent draw per column would make every model look better than it would in a bank.
Age and employment shape income and, in collections, the preferred channel; age is
generated but no credit model uses it (ECOA / Regulation B: age may only be a factor in a
demonstrably sound scoring system, and the demo has no reason to go there).

Numeric columns are float64 and categorical ones object dtype, exactly as the engine
builds model input frames, so a population can be scored without conversion.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any, Final

import numpy as np
import pandas as pd
from scipy.special import expit

USE_CASES: Final = ("collections", "onboarding", "cross-sell")
EMPLOYMENT_TYPES: Final = ("employed", "self_employed", "retired", "student", "unemployed")
REGIONS: Final = ("northeast", "midwest", "south", "west")
CONTACT_PREFERENCES: Final = ("call", "sms", "email", "letter")

#: Every customer feature any simulated model or strategy uses, with the schema entry the
#: registry validates. Ranges are what the bank would accept as plausible input, wider than
#: the simulated population, so a request outside them is a data error, not a rare customer.
FEATURES: Final[dict[str, dict[str, Any]]] = {
    "income": {
        "type": "numeric",
        "min": 0,
        "max": 2_000_000,
        "description": "Verified gross annual income (USD)",
    },
    "age": {"type": "numeric", "min": 18, "max": 100, "description": "Age in years"},
    "months_on_book": {
        "type": "numeric",
        "min": 0,
        "max": 600,
        "description": "Months since the customer's first account with the bank (0: new)",
    },
    "num_products": {
        "type": "numeric",
        "min": 0,
        "max": 20,
        "description": "Accounts the customer holds with the bank",
    },
    "utilisation": {
        "type": "numeric",
        "min": 0,
        "max": 1.5,
        "description": "Revolving balances over revolving limits, across the bureau file",
    },
    "bureau_score": {
        "type": "numeric",
        "min": 300,
        "max": 850,
        "description": "Credit bureau score",
    },
    "debt_to_income": {
        "type": "numeric",
        "min": 0,
        "max": 3,
        "description": "Monthly debt payments over monthly gross income",
    },
    "delinquencies": {
        "type": "numeric",
        "min": 0,
        "max": 50,
        "description": "Payments 30+ days late in the last 24 months, on the bureau file",
    },
    "employment_type": {
        "type": "categorical",
        "categories": list(EMPLOYMENT_TYPES),
        "description": "Employment status",
    },
    "region": {
        "type": "categorical",
        "categories": list(REGIONS),
        "description": "Census region of residence",
    },
    "balance": {
        "type": "numeric",
        "min": 0,
        "max": 100_000,
        "description": "Outstanding balance of the account in arrears (USD)",
    },
    "days_past_due": {
        "type": "numeric",
        "min": 1,
        "max": 180,
        "description": "Days since the oldest missed payment (charged off at 180)",
    },
    "payments_made_12m": {
        "type": "numeric",
        "min": 0,
        "max": 12,
        "description": "Months of the last 12 with a payment on the account",
    },
    "broken_promises": {
        "type": "numeric",
        "min": 0,
        "max": 20,
        "description": "Promises to pay not kept in the last 12 months",
    },
    "contacts_last_7d": {
        "type": "numeric",
        "min": 0,
        "max": 21,
        "description": "Collection contact attempts in the last 7 days",
    },
    "preferred_channel": {
        "type": "categorical",
        "categories": list(CONTACT_PREFERENCES),
        "description": "Contact channel the customer asked for",
    },
}

_COLUMNS: Final[dict[str, tuple[str, ...]]] = {
    "onboarding": (
        "income",
        "age",
        "employment_type",
        "region",
        "months_on_book",
        "num_products",
        "bureau_score",
        "delinquencies",
        "utilisation",
        "debt_to_income",
    ),
    "cross-sell": (
        "income",
        "age",
        "employment_type",
        "region",
        "months_on_book",
        "num_products",
        "bureau_score",
        "delinquencies",
        "utilisation",
        "debt_to_income",
    ),
    "collections": (
        "income",
        "age",
        "employment_type",
        "region",
        "bureau_score",
        "delinquencies",
        "utilisation",
        "debt_to_income",
        "balance",
        "days_past_due",
        "payments_made_12m",
        "broken_promises",
        "contacts_last_7d",
        "preferred_channel",
    ),
}

#: Mean and spread of the hidden credit quality: applicants are a little weaker than the
#: bank's existing customers, and customers in arrears clearly weaker.
_QUALITY: Final[dict[str, tuple[float, float]]] = {
    "onboarding": (-0.1, 1.0),
    "cross-sell": (0.15, 0.95),
    "collections": (-1.0, 0.9),
}


def feature_schema(names: Sequence[str]) -> list[dict[str, Any]]:
    """Schema entries (registry format, all required) for ``names``, in that order."""
    return [{"name": name, **copy.deepcopy(FEATURES[name]), "required": True} for name in names]


def columns(use_case: str) -> tuple[str, ...]:
    """The columns ``customers`` gives for ``use_case``."""
    _check_use_case(use_case)
    return _COLUMNS[use_case]


def customers(use_case: str, n: int, *, seed: int) -> pd.DataFrame:
    """``n`` customers of ``use_case``; the same seed always gives the same frame.

    Onboarding: applicants (about a third already bank with us). Cross-sell: existing
    customers. Collections: customers with an account 1-180 days past due.
    """
    _check_use_case(use_case)
    if n < 1:
        raise ValueError("n must be at least 1")
    rng = np.random.default_rng(seed)
    mean, spread = _QUALITY[use_case]
    quality = rng.normal(mean, spread, n)
    data = _people(rng, quality)
    if use_case == "onboarding":
        existing = rng.random(n) < 0.35
        tenure_cap = np.minimum(360.0, (data["age"] - 18.0) * 12.0 + 1.0)
        data["months_on_book"] = np.where(existing, np.floor(rng.random(n) * tenure_cap) + 1, 0.0)
        data["num_products"] = np.where(existing, 1.0 + rng.poisson(0.8, n), 0.0).clip(0, 20)
    elif use_case == "cross-sell":
        tenure_cap = np.minimum(480.0, (data["age"] - 18.0) * 12.0 + 3.0)
        months = np.floor(3.0 + rng.random(n) * (tenure_cap - 3.0))
        data["months_on_book"] = months
        data["num_products"] = (1.0 + rng.poisson(0.6 + months / 150.0)).clip(1, 12)
    else:
        data.update(_arrears(rng, quality, data))
    frame = pd.DataFrame({name: data[name] for name in _COLUMNS[use_case]})
    for name in frame.columns:
        if FEATURES[name]["type"] == "numeric":
            frame[name] = frame[name].astype(np.float64)
        else:
            frame[name] = frame[name].astype(object)
    return frame


def _people(rng: np.random.Generator, quality: np.ndarray) -> dict[str, np.ndarray]:
    """Demographics and the bureau file, all driven by the hidden quality."""
    n = quality.size
    age = np.floor(rng.normal(44.0, 14.0, n).clip(18, 90))
    employment = _employment(rng, age)
    employment_effect = np.select(
        [employment == "self_employed", employment == "retired", employment == "student"],
        [0.05, -0.35, -1.0],
        default=0.0,
    ) + np.where(employment == "unemployed", -0.9, 0.0)
    # Income rises to the mid-fifties, then falls gently into retirement.
    age_curve = 0.018 * (np.minimum(age, 55.0) - 40.0) - 0.01 * np.maximum(age - 62.0, 0.0)
    log_income = 10.75 + 0.22 * quality + age_curve + employment_effect + rng.normal(0, 0.45, n)
    income = np.round(np.exp(log_income), -2).clip(5_000, 1_000_000)
    score = 690.0 + 55.0 * quality + 0.8 * (age - 40.0) + rng.normal(0, 30.0, n)
    score = np.round(score - np.where(employment == "unemployed", 25.0, 0.0)).clip(300, 850)
    delinquencies = rng.poisson(np.exp(-1.4 - 0.9 * quality)).clip(0, 20).astype(np.float64)
    utilisation = np.round(1.15 * expit(-0.5 - 0.75 * quality + rng.normal(0, 0.9, n)), 3)
    debt_to_income = np.round(np.exp(-1.35 - 0.2 * quality + rng.normal(0, 0.5, n)).clip(0, 3), 3)
    region = rng.choice(np.array(REGIONS, dtype=object), n, p=[0.18, 0.21, 0.38, 0.23])
    return {
        "age": age,
        "employment_type": employment,
        "income": income,
        "bureau_score": score,
        "delinquencies": delinquencies,
        "utilisation": utilisation.clip(0, 1.5),
        "debt_to_income": debt_to_income,
        "region": region,
    }


def _employment(rng: np.random.Generator, age: np.ndarray) -> np.ndarray:
    """Employment status, by age band (students young, retirees old)."""
    young = [0.52, 0.03, 0.0, 0.33, 0.12]
    prime = [0.76, 0.13, 0.01, 0.03, 0.07]
    late = [0.55, 0.12, 0.28, 0.0, 0.05]
    old = [0.12, 0.06, 0.80, 0.0, 0.02]
    probabilities = np.select(
        [age[:, None] < 25, age[:, None] < 58, age[:, None] < 65],
        [np.array(young), np.array(prime), np.array(late)],
        default=np.array(old),
    )
    cumulative = probabilities.cumsum(axis=1)
    drawn = (rng.random(age.size)[:, None] > cumulative).sum(axis=1).clip(0, 4)
    return np.array(EMPLOYMENT_TYPES, dtype=object)[drawn]


def _arrears(
    rng: np.random.Generator, quality: np.ndarray, people: dict[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """The account in arrears: balance, how late, payment and contact history."""
    n = quality.size
    log_balance = 7.7 + 0.35 * np.log(people["income"] / 45_000.0) + rng.normal(0, 0.9, n)
    balance = np.round(np.exp(log_balance).clip(50, 50_000), 2)
    stage = rng.random(n)
    early = 1.0 + np.floor(rng.random(n) * 30.0)
    middle = 31.0 + np.floor(rng.random(n) * 60.0)
    late = 91.0 + np.floor(rng.random(n) * 90.0)
    days_past_due = np.select([stage < 0.6, stage < 0.85], [early, middle], default=late)
    paying = expit(1.2 + 0.8 * quality - days_past_due / 60.0)
    payments = rng.binomial(12, paying).astype(np.float64)
    broken = rng.poisson(0.3 + days_past_due / 90.0).clip(0, 20).astype(np.float64)
    contacts = rng.poisson(0.6 + days_past_due / 60.0).clip(0, 21).astype(np.float64)
    age = people["age"]
    preferences = np.select(
        [age[:, None] < 35, age[:, None] < 60],
        [np.array([0.15, 0.45, 0.35, 0.05]), np.array([0.30, 0.30, 0.30, 0.10])],
        default=np.array([0.45, 0.15, 0.15, 0.25]),
    )
    drawn = (rng.random(n)[:, None] > preferences.cumsum(axis=1)).sum(axis=1).clip(0, 3)
    return {
        "balance": balance,
        "days_past_due": days_past_due,
        "payments_made_12m": payments,
        "broken_promises": broken,
        "contacts_last_7d": contacts,
        "preferred_channel": np.array(CONTACT_PREFERENCES, dtype=object)[drawn],
    }


def _check_use_case(use_case: str) -> None:
    if use_case not in USE_CASES:
        raise ValueError(f"unknown use case {use_case!r}; one of {', '.join(USE_CASES)}")
