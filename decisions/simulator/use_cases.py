"""Three ready-made use cases: trained models, strategy and constraint-set content.

Each ``UseCase`` holds what an analyst would register for it: the model versions (fitted
pipelines with their content), the strategy (action catalog, predictions, value,
eligibility) and the constraint set (portfolio limits and per-decision rules). Register
them through the governance services in the usual order: models, then the strategy with
the model version numbers the registry gave them, then the constraint set naming the
strategy.

Portfolio bounds are written per customer and scaled to the population the run decides
on (``constraints(..., customers=n)``, 5,000 by default): a call centre's capacity or a
quarter's budget is fixed in reality, but a demo that runs on 1,000 or 10,000 customers
should meet limits that bind without being infeasible. Checked on the LP relaxation
(``tests/decisions/test_simulator.py``): every limit either stops customers' unconstrained
favourite actions or carries a dual price at the optimum, the fallback action (decline,
no offer, no contact) meets every ``<=`` limit, and all limits together, including
onboarding's ``>=`` minimum of new accounts, can be met.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import pandas as pd

from decisions.simulator import behaviour
from decisions.simulator.population import USE_CASES, customers, feature_schema
from decisions.simulator.training import TrainedModel, train_models

__all__ = ["USE_CASES", "Limit", "Prediction", "UseCase", "population", "use_case"]

DEFAULT_CUSTOMERS: Final = 5_000


@dataclass(frozen=True)
class Prediction:
    """One predicted quantity: which model gives it and which action attributes it takes."""

    quantity: str
    model: str
    action_inputs: tuple[str, ...] = ()
    risk: bool = False
    """A credit-risk model: its reason codes explain adverse outcomes (Regulation B)."""


@dataclass(frozen=True)
class Limit:
    """A portfolio limit whose bound is ``per_customer`` times the population size."""

    name: str
    expression: str
    sense: str
    per_customer: float
    description: str

    def bound(self, customers: int) -> float:
        # Whole units read better in a review screen than 1234.5678 (bounds are dollars or
        # counts); a zero bound (an average-PD cap) stays exactly zero.
        return float(round(self.per_customer * customers))


@dataclass(frozen=True)
class UseCase:
    """A use case ready to register: models, strategy and constraint-set content."""

    name: str
    description: str
    models: dict[str, TrainedModel]
    """Model name -> (fitted pipeline, model version content)."""
    actions: list[dict[str, Any]]
    fallback_action: str
    predictions: tuple[Prediction, ...]
    value: str
    eligibility: list[dict[str, str]]
    limits: tuple[Limit, ...]
    rules: list[dict[str, str]]
    extra_features: list[dict[str, Any]] = field(default_factory=list)

    def strategy(self, model_versions: Mapping[str, int]) -> dict[str, Any]:
        """Strategy version content using ``model_versions`` (model name -> version number).

        Raises ``KeyError`` naming a model the mapping does not give a version for.
        """
        missing = [p.model for p in self.predictions if p.model not in model_versions]
        if missing:
            raise KeyError(f"no version given for model {missing[0]!r}")
        return {
            "use_case": self.name,
            "description": self.description,
            "credit_decision": self.name == "onboarding",
            "actions": [dict(a, attributes=dict(a["attributes"])) for a in self.actions],
            "fallback_action": self.fallback_action,
            "predictions": [
                {
                    "quantity": p.quantity,
                    "model": {"name": p.model, "version": int(model_versions[p.model])},
                    "action_inputs": list(p.action_inputs),
                    "risk": p.risk,
                }
                for p in self.predictions
            ],
            "extra_features": [dict(f) for f in self.extra_features],
            "value": self.value,
            "eligibility": [dict(rule) for rule in self.eligibility],
        }

    def constraints(
        self, strategy_name: str, *, customers: int = DEFAULT_CUSTOMERS
    ) -> dict[str, Any]:
        """Constraint-set content for the strategy item ``strategy_name``.

        Bounds are sized for a run over ``customers`` customers.
        """
        return {
            "strategy": strategy_name,
            "description": f"{self.name} limits, sized for {customers:,} customers.",
            "portfolio": [
                {
                    "name": limit.name,
                    "expression": limit.expression,
                    "sense": limit.sense,
                    "bound": limit.bound(customers),
                    "description": limit.description,
                }
                for limit in self.limits
            ],
            "rules": [dict(rule) for rule in self.rules],
        }

    def population(self, n: int, *, seed: int) -> pd.DataFrame:
        """Customers to decide on, with every column the models and strategy need."""
        return customers(self.name, n, seed=seed)

    def outcomes(
        self, people: pd.DataFrame, action_ids: Sequence[str], *, seed: int
    ) -> pd.DataFrame:
        """What happened after each customer got their action, drawn from the true behaviour."""
        actions = behaviour.action_frame(self.name, action_ids)
        return behaviour.outcomes_sample(self.name, people, actions, seed=seed)


def use_case(name: str, *, seed: int = 7) -> UseCase:
    """Train the models of use case ``name`` on simulated history and assemble its content.

    Deterministic for a seed. Takes about a second per use case on two cores.
    """
    if name not in USE_CASES:
        raise ValueError(f"unknown use case {name!r}; one of {', '.join(USE_CASES)}")
    models = train_models(name, seed=seed)
    return _BUILDERS[name](models)


def population(name: str, n: int, *, seed: int) -> pd.DataFrame:
    """``n`` customers of use case ``name`` (every feature its models and strategy need)."""
    return customers(name, n, seed=seed)


def _collections(models: dict[str, TrainedModel]) -> UseCase:
    hours = behaviour.CONTACT_HOURS
    # Agents per shift differ: the morning and evening shifts are thinner than midday.
    capacity = dict(zip(hours, (0.04, 0.06, 0.06, 0.05), strict=True))
    calls = [
        Limit(
            name=f"call_capacity_{hour}",
            expression=f"is_call_{hour}",
            sense="<=",
            per_customer=capacity[hour],
            description=f"Calls the collections floor can make in the {hour}:00 shift",
        )
        for hour in hours
    ]
    discounts = Limit(
        name="discount_budget",
        expression="p_pay * pay_share * balance * discount",
        sense="<=",
        per_customer=10.0,
        description="Expected balance written off by settlement discounts this cycle",
    )
    return UseCase(
        name="collections",
        description=(
            "Which contact (channel, hour, settlement discount), if any, to make to each "
            "customer in arrears, to maximise expected recoveries net of contact costs."
        ),
        models=models,
        actions=behaviour.action_catalog("collections"),
        fallback_action="none",
        predictions=(
            Prediction("p_pay", "collections-payment", ("channel", "hour", "discount")),
            Prediction("pay_share", "collections-recovery", ("discount",)),
        ),
        value="p_pay * pay_share * balance * (1 - discount) - contact_cost",
        eligibility=[
            {
                "name": "settlement_stage",
                "rule": "discount == 0 or days_past_due >= 30",
                "description": "Settlement discounts only from 30 days past due.",
            }
        ],
        limits=(*calls, discounts),
        rules=[
            {
                "name": "contact_frequency",
                "rule": "contacts_last_7d < 3 or is_contact == 0",
                "description": "No contact after three attempts in seven days (Reg F).",
            },
            {
                "name": "convenient_hours",
                "rule": "is_contact == 0 or (hour >= 8 and hour + 3 <= 21)",
                "description": "The whole contact slot falls between 8:00 and 21:00 (FDCPA).",
            },
        ],
    )


def _onboarding(models: dict[str, TrainedModel]) -> UseCase:
    age = feature_schema(["age"])[0]
    return UseCase(
        name="onboarding",
        description=(
            "Approve or decline each card applicant and, if approved, the credit limit and "
            "APR, to maximise expected margin net of credit losses."
        ),
        models=models,
        actions=behaviour.action_catalog("onboarding"),
        fallback_action="decline",
        predictions=(
            Prediction("pd", "onboarding-pd", ("limit", "apr"), risk=True),
            Prediction("p_take", "onboarding-take-up", ("apr", "limit")),
        ),
        value="p_take * (apr * drawn * limit - pd * lgd * limit) - cost",
        eligibility=[
            {
                "name": "debt_burden",
                "rule": "debt_to_income <= 0.55 or is_offer == 0",
                "description": "No new credit above 55% debt-to-income.",
            },
            {
                "name": "recent_arrears",
                "rule": "delinquencies < 4 or is_offer == 0",
                "description": "No new credit with four or more recent late payments.",
            },
        ],
        extra_features=[age],
        limits=(
            Limit(
                name="expected_loss",
                expression="p_take * pd * lgd * limit",
                sense="<=",
                per_customer=45.0,
                description="Risk appetite: expected 12-month credit loss of the new book",
            ),
            Limit(
                name="new_exposure",
                expression="p_take * limit",
                sense="<=",
                per_customer=2_600.0,
                description="Credit limits expected to be booked (funding plan)",
            ),
            Limit(
                name="min_new_accounts",
                expression="p_take * is_offer",
                sense=">=",
                per_customer=0.35,
                description="Growth plan: expected new accounts at least this many",
            ),
        ),
        rules=[
            {"name": "apr_cap", "rule": "apr <= 0.36", "description": "Regulatory APR cap."},
            {
                "name": "ability_to_pay",
                "rule": "limit <= 0.25 * income",
                "description": "Limit at most a quarter of income (CARD Act ability to pay).",
            },
            {
                "name": "under_21_income",
                "rule": "age >= 21 or income >= 15000 or is_offer == 0",
                "description": "Applicants under 21 need independent income (CARD Act).",
            },
        ],
    )


def _cross_sell(models: dict[str, TrainedModel]) -> UseCase:
    return UseCase(
        name="cross-sell",
        description=(
            "Which product, if any, to offer each existing customer, to maximise expected "
            "first-year margin net of credit losses and campaign cost."
        ),
        models=models,
        actions=behaviour.action_catalog("cross-sell"),
        fallback_action="none",
        predictions=(
            Prediction("p_take", "cross-sell-take-up", ("product",)),
            Prediction("pd", "cross-sell-pd", ("product",), risk=True),
        ),
        value="p_take * (apr * drawn * limit + fee_income - pd * lgd * limit) - cost",
        eligibility=[
            {
                "name": "affordability",
                "rule": "limit <= 0.3 * income",
                "description": "New credit at most 30% of income.",
            },
            {
                "name": "recent_arrears",
                "rule": "delinquencies < 2 or is_credit == 0",
                "description": "No credit offers with two or more recent late payments.",
            },
        ],
        limits=(
            Limit(
                name="marketing_budget",
                expression="cost",
                sense="<=",
                per_customer=4.0,
                description="Campaign spend this quarter",
            ),
            Limit(
                name="loan_funding",
                expression="p_take * limit * is_loan",
                sense="<=",
                per_customer=400.0,
                description="Expected new personal-loan balances the treasury will fund",
            ),
            Limit(
                name="premium_card_quota",
                expression="is_premium_card",
                sense="<=",
                per_customer=0.005,
                description="Premium card offers (metal card stock and concierge places)",
            ),
            Limit(
                name="average_pd",
                expression="p_take * (pd - 0.02) * is_credit",
                sense="<=",
                per_customer=0.0,
                description="Risk appetite: expected new credit accounts average PD <= 2%",
            ),
        ),
        rules=[
            {"name": "apr_cap", "rule": "apr <= 0.36", "description": "Regulatory APR cap."},
        ],
    )


_BUILDERS: Final = {
    "collections": _collections,
    "onboarding": _onboarding,
    "cross-sell": _cross_sell,
}
