"""Monitoring fixtures: an active cross-sell deployment, decisions with chosen figures, clients."""

from __future__ import annotations

import copy
import uuid
from datetime import datetime

import pytest
from rest_framework.test import APIClient

from decisions.decision_log import decision_hash
from decisions.demo_portfolio import (
    cross_sell_constraints,
    cross_sell_strategy,
    take_up_model,
    write_skops,
)
from decisions.models import Decision
from governance import services
from governance.models import Version

_TRAINED: dict = {}


def go_live(version, *, maker, checker):
    version = services.version_submit(actor=maker, version=version)
    version = services.version_approve(actor=checker, version=version, comment="Reviewed.")
    return services.version_activate(actor=checker, version=version)


@pytest.fixture
def deployment(maker, checker, tmp_path):
    """An active 'cross-sell' deployment (none, card, loan) with a 30% challenger arm."""
    if not _TRAINED:
        _TRAINED["model"] = take_up_model(rows=1500)
    estimator, content = _TRAINED["model"]
    path = write_skops(estimator, tmp_path / "take-up.skops")
    with open(path, "rb") as handle:
        model = services.version_create(
            actor=maker,
            kind="model",
            name="take-up",
            content=copy.deepcopy(content),
            artifact=handle,
        )
    services.version_submit(actor=maker, version=model)
    services.version_approve(actor=checker, version=model, comment="Reviewed.")
    strategy = go_live(
        services.version_create(
            actor=maker,
            kind="strategy",
            name="cross-sell",
            content=cross_sell_strategy(model_name="take-up", model_version=model.number),
        ),
        maker=maker,
        checker=checker,
    )
    limits = go_live(
        services.version_create(
            actor=maker,
            kind="constraint_set",
            name="cross-sell-limits",
            content=cross_sell_constraints(strategy_name="cross-sell"),
        ),
        maker=maker,
        checker=checker,
    )
    arm = {
        "strategy": {"name": "cross-sell", "version": strategy.number},
        "constraint_set": {"name": "cross-sell-limits", "version": limits.number},
    }
    return go_live(
        services.version_create(
            actor=maker,
            kind="deployment",
            name="cross-sell",
            content={
                **arm,
                "prices": {"marketing_budget": 2.5},
                "salt": "monitoring-test",
                "challengers": [{"arm": "challenger", "share": 0.3, **arm}],
            },
        ),
        maker=maker,
        checker=checker,
    )


@pytest.fixture
def make_decision(deployment, api_client_user):
    """Log a decision with chosen figures (time, arm, action, value, latency, customer).

    Written like ``decision_make`` writes it, hash included; the engine is not needed to
    check KPI arithmetic.
    """
    strategy = Version.objects.get(item__kind="strategy", item__name="cross-sell", number=1)
    limits = Version.objects.get(item__kind="constraint_set", item__name="cross-sell-limits")
    catalog = {a["id"]: a["attributes"] for a in strategy.content["actions"]}

    def make(
        *,
        at: datetime,
        action: str = "card",
        arm: str = "champion",
        value: float = 0.0,
        latency_ms: float = 1.0,
        customer: str = "c-1",
        client=None,
        run=None,
    ) -> Decision:
        decision = Decision(
            decision_id=uuid.uuid4(),
            request_id=uuid.uuid4().hex,
            client=client or api_client_user,
            customer_id=customer,
            deployment_name="cross-sell",
            deployment_version=deployment,
            strategy_version=strategy,
            constraint_set_version=limits,
            versions={},
            arm=arm,
            features={},
            actions=[],
            action_id=action,
            action=dict(catalog[action]),
            value=value,
            prices={},
            reasons=[],
            contributions=[],
            explanation={},
            latency_ms=latency_ms,
            created_at=at,
            run=run,
        )
        decision.content_hash = decision_hash(decision)
        decision.save(force_insert=True)
        return decision

    return make


def client_for(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def api(api_client_user) -> APIClient:
    return client_for(api_client_user)


@pytest.fixture
def client_of():
    """``client_of(user)``: an API client authenticated as ``user``."""
    return client_for
