"""The simulated world: each use case's actions and how customers truly respond to them.

These are the ground-truth response curves the models are trained to approximate. They
are known here so that an optimised strategy can be judged against the truth (not only
against its own models) and so that monitoring can post outcomes drawn from them.

Every probability function is vectorised: pass a customer frame of N rows and action
attributes as scalars or N-arrays (one action per customer). The shapes are chosen to be
believable, not fitted to any bank:

- onboarding: a higher limit or APR raises the probability of default (payment shock and
  adverse selection: the customers who accept expensive credit are the ones who need it),
  a lower APR and a higher limit raise take-up, and prime customers shop around harder;
- cross-sell: each product appeals to a different customer (cards to the young and
  revolving, loans to the indebted, savings to the affluent), default depends on product;
- collections: payment within 30 days depends on the channel, the hour (working people
  answer calls in the evening, retirees in the morning), a settlement discount (worth more
  the later the arrears), contact fatigue and the customer's own history; the amount paid
  is a share of the (discounted) balance that affordability and the discount drive.

``outcomes_sample`` draws 0/1 outcomes and amounts from these probabilities with a seeded
generator. The uniform draws depend only on the seed and the row, so two strategies
simulated with the same seed meet the same luck per customer (common random numbers).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from scipy.special import expit

from decisions.simulator.population import USE_CASES

# --- the action catalogs ---------------------------------------------------------------------

ONBOARDING_LIMITS: Final = (1_000, 2_500, 5_000, 10_000)
ONBOARDING_APRS: Final = (0.09, 0.14, 0.19, 0.24, 0.29)
#: Loss given default and the expected drawn share of a new card line.
CARD_LGD: Final = 0.85
CARD_DRAWN: Final = 0.6
#: Underwriting, fraud checks and card issuance for one approved offer (USD).
ONBOARDING_OFFER_COST: Final = 35.0

#: product -> terms. ``drawn`` is the expected share of the limit in use; ``fee_income`` the
#: yearly non-interest margin (savings: deposit spread; premium card: annual fee).
CROSS_SELL_PRODUCTS: Final[dict[str, dict[str, float]]] = {
    "card": {"limit": 3_000, "apr": 0.22, "drawn": 0.45, "fee_income": 0, "cost": 6},
    "premium_card": {"limit": 10_000, "apr": 0.19, "drawn": 0.3, "fee_income": 95, "cost": 18},
    "loan": {"limit": 8_000, "apr": 0.11, "drawn": 1.0, "fee_income": 0, "cost": 9},
    "overdraft": {"limit": 1_000, "apr": 0.28, "drawn": 0.4, "fee_income": 20, "cost": 3},
    "savings": {"limit": 0, "apr": 0.0, "drawn": 0.0, "fee_income": 60, "cost": 2},
}
CREDIT_PRODUCTS: Final = ("card", "premium_card", "loan", "overdraft")
CROSS_SELL_LGD: Final = {"card": 0.85, "premium_card": 0.85, "loan": 0.6, "overdraft": 0.9}

COLLECTION_CHANNELS: Final = ("call", "sms", "email")
#: Start of each contact slot (local time); calls are worked in three-hour shifts.
CONTACT_HOURS: Final = (9, 12, 15, 18)
DISCOUNTS: Final = (0.0, 0.1, 0.2)
CONTACT_COSTS: Final = {"call": 4.5, "sms": 0.05, "email": 0.01}


def action_catalog(use_case: str) -> list[dict[str, Any]]:
    """The use case's actions in strategy format (``id``, ``label``, ``attributes``).

    The first action is the fallback (no offer, no contact). Every action has the same
    attributes; 0/1 flags such as ``is_call_9`` exist so that portfolio limits can count
    actions with plain arithmetic.
    """
    if use_case == "onboarding":
        return _onboarding_actions()
    if use_case == "cross-sell":
        return _cross_sell_actions()
    if use_case == "collections":
        return _collections_actions()
    raise ValueError(f"unknown use case {use_case!r}; one of {', '.join(USE_CASES)}")


def _onboarding_actions() -> list[dict[str, Any]]:
    actions = [
        {
            "id": "decline",
            "label": "Decline",
            "attributes": {
                "limit": 0,
                "apr": 0.0,
                "lgd": CARD_LGD,
                "drawn": 0.0,
                "cost": 0.0,
                "is_offer": 0,
            },
        }
    ]
    for limit in ONBOARDING_LIMITS:
        for apr in ONBOARDING_APRS:
            actions.append(
                {
                    "id": f"limit-{limit}-apr-{round(apr * 100):02d}",
                    "label": f"Card, ${limit:,} limit at {apr:.0%} APR",
                    "attributes": {
                        "limit": limit,
                        "apr": apr,
                        "lgd": CARD_LGD,
                        "drawn": CARD_DRAWN,
                        "cost": ONBOARDING_OFFER_COST,
                        "is_offer": 1,
                    },
                }
            )
    return actions


def _cross_sell_actions() -> list[dict[str, Any]]:
    labels = {
        "card": "Credit card",
        "premium_card": "Premium credit card",
        "loan": "Personal loan",
        "overdraft": "Arranged overdraft",
        "savings": "Savings account",
    }

    def attributes(product: str, terms: Mapping[str, float]) -> dict[str, Any]:
        return {
            "product": product,
            "limit": terms["limit"],
            "apr": terms["apr"],
            "drawn": terms["drawn"],
            "fee_income": terms["fee_income"],
            "lgd": CROSS_SELL_LGD.get(product, 0.0),
            "cost": terms["cost"],
            "is_offer": int(product != "none"),
            "is_credit": int(product in CREDIT_PRODUCTS),
            **{f"is_{p}": int(p == product) for p in CROSS_SELL_PRODUCTS},
        }

    none = {"limit": 0, "apr": 0.0, "drawn": 0.0, "fee_income": 0, "cost": 0}
    actions = [{"id": "none", "label": "No offer", "attributes": attributes("none", none)}]
    for product, terms in CROSS_SELL_PRODUCTS.items():
        actions.append(
            {
                "id": product.replace("_", "-"),
                "label": labels[product],
                "attributes": attributes(product, terms),
            }
        )
    return actions


def _collections_actions() -> list[dict[str, Any]]:
    def attributes(channel: str, hour: int, discount: float) -> dict[str, Any]:
        return {
            "channel": channel,
            "hour": hour,
            "discount": discount,
            "contact_cost": CONTACT_COSTS.get(channel, 0.0),
            "is_contact": int(channel != "none"),
            **{f"is_{c}": int(c == channel) for c in COLLECTION_CHANNELS},
            **{f"is_call_{h}": int(channel == "call" and hour == h) for h in CONTACT_HOURS},
        }

    actions = [{"id": "none", "label": "No contact", "attributes": attributes("none", 0, 0.0)}]
    for channel in COLLECTION_CHANNELS:
        for hour in CONTACT_HOURS:
            for discount in DISCOUNTS:
                actions.append(
                    {
                        "id": f"{channel}-{hour:02d}h-disc{round(discount * 100):02d}",
                        "label": (
                            f"{channel.upper() if channel == 'sms' else channel.title()} "
                            f"at {hour}:00, {discount:.0%} settlement discount"
                        ),
                        "attributes": attributes(channel, hour, discount),
                    }
                )
    return actions


def action_frame(use_case: str, action_ids: Sequence[str]) -> pd.DataFrame:
    """The attributes of ``action_ids`` (one row each, in order) as a data frame.

    Raises ``KeyError`` naming the first id the catalog does not hold.
    """
    by_id = {a["id"]: a["attributes"] for a in action_catalog(use_case)}
    unknown = [a for a in action_ids if a not in by_id]
    if unknown:
        raise KeyError(f"{use_case} has no action {unknown[0]!r}")
    frame = pd.DataFrame([by_id[a] for a in action_ids], index=pd.RangeIndex(len(action_ids)))
    return frame.astype({c: object for c in ("product", "channel") if c in frame})


# --- ground truth: onboarding ----------------------------------------------------------------

_EMPLOYMENT_RISK: Final = {
    "employed": 0.0,
    "self_employed": 0.25,
    "retired": -0.1,
    "student": 0.4,
    "unemployed": 0.9,
}


def onboarding_default_probability(
    customers: pd.DataFrame, *, limit: ArrayLike, apr: ArrayLike
) -> np.ndarray:
    """P(default within 12 months of booking), for an applicant who takes the offer.

    Rises with the limit (more rope, and payment shock once the limit is large against
    income) and with the APR (adverse selection and a heavier payment).
    """
    x = _numbers(customers)
    limit = np.maximum(np.asarray(limit, dtype=np.float64), 500.0)
    apr = np.asarray(apr, dtype=np.float64)
    logit = (
        _customer_risk(customers, x)
        - 0.9
        + 0.25 * np.log(limit / 2_500.0)
        + 3.0 * np.maximum(limit / x["income"] - 0.15, 0.0)
        + 4.0 * (apr - 0.19)
    )
    return expit(logit)


def onboarding_take_up_probability(
    customers: pd.DataFrame, *, limit: ArrayLike, apr: ArrayLike
) -> np.ndarray:
    """P(the applicant activates the card offered); 0 when nothing is offered (limit 0)."""
    x = _numbers(customers)
    raw_limit = np.asarray(limit, dtype=np.float64)
    limit = np.maximum(raw_limit, 500.0)
    apr = np.asarray(apr, dtype=np.float64)
    # Prime applicants have other offers in their pocket and walk away from a dear one.
    price_sensitivity = np.clip(1.0 + (x["bureau_score"] - 680.0) / 150.0, 0.3, 2.0)
    logit = (
        0.5
        - 13.0 * price_sensitivity * (apr - 0.19)
        + 0.35 * np.log(limit / 2_500.0)
        + 0.6 * (x["utilisation"] - 0.45)
        + 0.15 * x["delinquencies"]
        + 0.3 * (x["num_products"] > 0)
        - 0.004 * (x["bureau_score"] - 680.0)
        + 0.4 * (x["age"] < 30)
    )
    return np.where(raw_limit > 0, expit(logit), 0.0)


# --- ground truth: cross-sell ----------------------------------------------------------------

_CROSS_SELL_DEFAULT_SHIFT: Final = {
    "card": 0.0,
    "premium_card": -0.3,
    "loan": -0.1,
    "overdraft": 0.45,
}


def cross_sell_take_up_probability(customers: pd.DataFrame, *, product: ArrayLike) -> np.ndarray:
    """P(the customer opens the product offered within the campaign); 0 for ``none``."""
    x = _numbers(customers)
    product = _texts(product, len(customers))
    employment = customers["employment_type"].to_numpy(dtype=object)
    z_income = np.log(x["income"] / 45_000.0)
    z_score = (x["bureau_score"] - 690.0) / 60.0
    tenure = np.minimum(x["months_on_book"], 240.0) / 120.0
    student = employment == "student"
    retired = employment == "retired"
    self_employed = employment == "self_employed"
    young = x["age"] < 35
    logits = {
        "card": -2.0
        + 0.9 * x["utilisation"]
        - 0.25 * (x["num_products"] - 3.0)
        + 0.5 * student
        + 0.4 * young
        - 0.6 * retired
        + 0.2 * z_score,
        "premium_card": -3.0 + 1.3 * z_income + 0.4 * z_score - 0.8 * student + 0.2 * tenure,
        "loan": -2.7
        + 1.4 * x["debt_to_income"]
        + 0.3 * tenure
        - 0.4 * retired
        + 0.3 * self_employed
        + 0.2 * z_income,
        "overdraft": -2.5
        + 1.0 * x["utilisation"]
        + 0.35 * np.minimum(x["delinquencies"], 4.0)
        - 0.4 * z_score
        + 0.3 * young,
        "savings": -2.4
        + 0.7 * z_income
        - 1.2 * x["debt_to_income"]
        - 0.6 * x["utilisation"]
        + 0.6 * retired
        + 0.3 * tenure,
    }
    out = np.zeros(len(customers))
    for name, logit in logits.items():
        chosen = product == name
        out[chosen] = expit(logit[chosen])
    return out


def cross_sell_default_probability(customers: pd.DataFrame, *, product: ArrayLike) -> np.ndarray:
    """P(default within 12 months) on the credit product booked; 0 for savings and none."""
    x = _numbers(customers)
    product = _texts(product, len(customers))
    terms = pd.DataFrame(CROSS_SELL_PRODUCTS).T
    limit = pd.Series(product).map(terms["limit"]).fillna(0.0).to_numpy(dtype=np.float64)
    drawn = pd.Series(product).map(terms["drawn"]).fillna(0.0).to_numpy(dtype=np.float64)
    shift = pd.Series(product).map(_CROSS_SELL_DEFAULT_SHIFT).fillna(0.0).to_numpy(np.float64)
    logit = (
        _customer_risk(customers, x)
        - 0.3
        + shift
        + 2.0 * np.maximum(limit * drawn / x["income"] - 0.1, 0.0)
    )
    return np.where(np.isin(product, CREDIT_PRODUCTS), expit(logit), 0.0)


# --- ground truth: collections ---------------------------------------------------------------

_CHANNEL_LIFT: Final = {"none": 0.0, "call": 1.0, "sms": 0.55, "email": 0.3}
#: Log-odds effect of the contact hour by channel, for people at work, at home (retired,
#: unemployed) and students: calls reach workers after work and retirees in the morning.
_HOUR_EFFECT: Final[dict[str, dict[str, Sequence[float]]]] = {
    "working": {
        "call": (-0.35, 0.0, -0.1, 0.35),
        "sms": (0.1, 0.2, 0.0, 0.1),
        "email": (0.15, 0.05, 0.0, -0.1),
    },
    "home": {
        "call": (0.3, 0.2, 0.05, -0.25),
        "sms": (0.0, 0.1, 0.1, -0.1),
        "email": (0.1, 0.05, 0.0, -0.05),
    },
    "student": {
        "call": (-0.4, 0.1, 0.2, 0.2),
        "sms": (-0.1, 0.2, 0.2, 0.2),
        "email": (-0.1, 0.1, 0.1, 0.1),
    },
}
_EMPLOYMENT_COLLECTIONS: Final = {
    "employed": 0.0,
    "self_employed": -0.1,
    "retired": 0.2,
    "student": -0.2,
    "unemployed": -0.4,
}


def collections_payment_probability(
    customers: pd.DataFrame, *, channel: ArrayLike, hour: ArrayLike, discount: ArrayLike
) -> np.ndarray:
    """P(a payment within 30 days) given the contact (``none``: the self-cure rate)."""
    x = _numbers(customers)
    n = len(customers)
    channel = _texts(channel, n)
    hour = np.broadcast_to(np.asarray(hour, dtype=np.float64), (n,))
    discount = np.broadcast_to(np.asarray(discount, dtype=np.float64), (n,))
    employment = customers["employment_type"].to_numpy(dtype=object)
    contacted = channel != "none"
    base = (
        -1.9
        - 0.012 * (x["days_past_due"] - 30.0)
        + 0.16 * (x["payments_made_12m"] - 5.0)
        - 0.3 * x["broken_promises"]
        + 0.004 * (x["bureau_score"] - 620.0)
        - 0.3 * np.log(x["balance"] / 2_500.0)
        + 0.25 * np.log(x["income"] / 35_000.0)
        + pd.Series(employment).map(_EMPLOYMENT_COLLECTIONS).to_numpy(dtype=np.float64)
    )
    lift = pd.Series(channel).map(_CHANNEL_LIFT).fillna(0.0).to_numpy(dtype=np.float64)
    preferred = contacted & (customers["preferred_channel"].to_numpy(dtype=object) == channel)
    group = np.select(
        [np.isin(employment, ("retired", "unemployed")), employment == "student"],
        ["home", "student"],
        default="working",
    )
    slot = np.abs(hour[:, None] - np.asarray(CONTACT_HOURS, dtype=np.float64)).argmin(axis=1)
    hour_effect = np.zeros(n)
    for who, by_channel in _HOUR_EFFECT.items():
        for name, effects in by_channel.items():
            rows = (group == who) & (channel == name)
            hour_effect[rows] = np.asarray(effects)[slot[rows]]
    # A settlement discount moves late-stage accounts far more than fresh arrears.
    discount_effect = discount * (3.0 + 4.0 * x["days_past_due"] / 180.0)
    fatigue = 0.3 * x["contacts_last_7d"] * contacted
    logit = base + lift + 0.35 * preferred + hour_effect + discount_effect - fatigue
    return expit(logit)


def collections_payment_share(customers: pd.DataFrame, *, discount: ArrayLike) -> np.ndarray:
    """Expected share of the discounted balance paid, given that the customer pays.

    A discount is a settlement offer, so those who take it tend to clear the account.
    """
    x = _numbers(customers)
    discount = np.asarray(discount, dtype=np.float64)
    affordability = np.log(x["income"] / 12.0 / x["balance"])
    return expit(
        0.3
        + 0.7 * affordability
        + 0.12 * (x["payments_made_12m"] - 5.0)
        + 6.0 * discount
        - 0.004 * (x["days_past_due"] - 30.0)
    )


# --- outcomes --------------------------------------------------------------------------------


def outcome_probabilities(
    use_case: str, customers: pd.DataFrame, actions: pd.DataFrame
) -> dict[str, np.ndarray]:
    """The true probabilities behind each outcome, for one action per customer.

    ``actions`` holds the action attributes row by row (``action_frame``). Onboarding and
    cross-sell: ``take_up`` and ``default`` (given take-up). Collections: ``payment`` and
    ``payment_share`` (expected share of the discounted balance, given a payment).
    """
    _check_rows(customers, actions)
    if use_case == "onboarding":
        limit, apr = actions["limit"].to_numpy(float), actions["apr"].to_numpy(float)
        return {
            "take_up": onboarding_take_up_probability(customers, limit=limit, apr=apr),
            "default": onboarding_default_probability(customers, limit=limit, apr=apr),
        }
    if use_case == "cross-sell":
        product = actions["product"].to_numpy(dtype=object)
        return {
            "take_up": cross_sell_take_up_probability(customers, product=product),
            "default": cross_sell_default_probability(customers, product=product),
        }
    if use_case == "collections":
        discount = actions["discount"].to_numpy(float)
        return {
            "payment": collections_payment_probability(
                customers,
                channel=actions["channel"].to_numpy(dtype=object),
                hour=actions["hour"].to_numpy(float),
                discount=discount,
            ),
            "payment_share": collections_payment_share(customers, discount=discount),
        }
    raise ValueError(f"unknown use case {use_case!r}; one of {', '.join(USE_CASES)}")


def outcomes_sample(
    use_case: str, customers: pd.DataFrame, actions: pd.DataFrame, *, seed: int
) -> pd.DataFrame:
    """Draw what happened to each customer after their action (0/1 flags and amounts).

    Onboarding and cross-sell: ``taken_up``, ``defaulted`` (only if taken up) and
    ``loss_amount`` (exposure at default times LGD). Collections: ``paid``,
    ``amount_recovered`` and ``discount_given`` (USD written off by the settlement).
    """
    probabilities = outcome_probabilities(use_case, customers, actions)
    rng = np.random.default_rng(seed)
    n = len(customers)
    first, second = rng.random(n), rng.random(n)
    if use_case in ("onboarding", "cross-sell"):
        taken = first < probabilities["take_up"]
        defaulted = taken & (second < probabilities["default"])
        limit = actions["limit"].to_numpy(float)
        # Lines are drawn up before they default: exposure at default is ~90% of the limit.
        exposure = limit * np.where(actions["drawn"].to_numpy(float) >= 1.0, 0.8, 0.9)
        loss = np.where(defaulted, exposure * actions["lgd"].to_numpy(float), 0.0)
        return pd.DataFrame(
            {
                "taken_up": taken.astype(np.int64),
                "defaulted": defaulted.astype(np.int64),
                "loss_amount": np.round(loss, 2),
            }
        )
    mean = np.clip(probabilities["payment_share"], 0.01, 0.99)
    concentration = 5.0
    share = rng.beta(mean * concentration, (1.0 - mean) * concentration)
    paid = first < probabilities["payment"]
    balance = customers["balance"].to_numpy(float)
    discount = actions["discount"].to_numpy(float)
    due = balance * (1.0 - discount)
    recovered = np.where(paid, due * share, 0.0)
    return pd.DataFrame(
        {
            "paid": paid.astype(np.int64),
            "amount_recovered": np.round(recovered, 2),
            "discount_given": np.round(np.where(paid, balance * discount * share, 0.0), 2),
        }
    )


# --- shared pieces ---------------------------------------------------------------------------


def _customer_risk(customers: pd.DataFrame, x: Mapping[str, np.ndarray]) -> np.ndarray:
    """Log-odds of default from the bureau file and income, before the product's terms."""
    employment = customers["employment_type"].to_numpy(dtype=object)
    return (
        -3.1
        - 0.012 * (x["bureau_score"] - 680.0)
        + 1.6 * (x["debt_to_income"] - 0.3)
        + 0.35 * x["delinquencies"]
        + 0.8 * (x["utilisation"] - 0.45)
        - 0.3 * np.log(x["income"] / 45_000.0)
        + pd.Series(employment).map(_EMPLOYMENT_RISK).to_numpy(dtype=np.float64)
        - 0.002 * np.minimum(x.get("months_on_book", np.zeros(len(customers))), 240.0)
    )


def _numbers(customers: pd.DataFrame) -> dict[str, np.ndarray]:
    """The numeric customer columns as float64 arrays."""
    return {
        str(name): customers[name].to_numpy(dtype=np.float64)
        for name in customers.columns
        if customers[name].dtype != object
    }


def _texts(values: ArrayLike, n: int) -> np.ndarray:
    return np.broadcast_to(np.asarray(values, dtype=object), (n,))


def _check_rows(customers: pd.DataFrame, actions: pd.DataFrame) -> None:
    if len(customers) != len(actions):
        raise ValueError(
            f"one action per customer: {len(customers)} customers, {len(actions)} actions"
        )
