from __future__ import annotations

import copy
from pathlib import Path

import pytest

from decisions.demo_portfolio import take_up_model, write_skops
from governance import services

_TRAINED: dict = {}


@pytest.fixture
def trained_model(tmp_path: Path) -> tuple[Path, dict]:
    """A real fitted pipeline as a skops file plus its content (trained once per session)."""
    if not _TRAINED:
        _TRAINED["model"] = take_up_model(rows=1500)
    estimator, content = _TRAINED["model"]
    return write_skops(estimator, tmp_path / "take-up.skops"), copy.deepcopy(content)


@pytest.fixture
def register_model(trained_model):
    def register(actor, name: str = "take-up", content: dict | None = None):
        path, default = trained_model
        with open(path, "rb") as handle:
            return services.version_create(
                actor=actor, kind="model", name=name, content=content or default, artifact=handle
            )

    return register


@pytest.fixture
def approved_model(register_model, maker, checker):
    version = register_model(maker)
    services.version_submit(actor=maker, version=version)
    return services.version_approve(actor=checker, version=version, comment="Reviewed.")


def go_live(version, *, maker, checker):
    version = services.version_submit(actor=maker, version=version)
    version = services.version_approve(actor=checker, version=version, comment="Reviewed.")
    return services.version_activate(actor=checker, version=version)


@pytest.fixture
def cross_sell_deployment(approved_model, maker, checker):
    """An active 'cross-sell' deployment over the demo take-up model, with published prices."""
    from decisions.demo_portfolio import cross_sell_constraints, cross_sell_strategy

    strategy = services.version_create(
        actor=maker,
        kind="strategy",
        name="cross-sell",
        content=cross_sell_strategy(model_name="take-up", model_version=approved_model.number),
    )
    go_live(strategy, maker=maker, checker=checker)
    limits = services.version_create(
        actor=maker,
        kind="constraint_set",
        name="cross-sell-limits",
        content=cross_sell_constraints(strategy_name="cross-sell"),
    )
    go_live(limits, maker=maker, checker=checker)
    deployment = services.version_create(
        actor=maker,
        kind="deployment",
        name="cross-sell",
        content={
            "strategy": {"name": "cross-sell", "version": strategy.number},
            "constraint_set": {"name": "cross-sell-limits", "version": limits.number},
            "prices": {"marketing_budget": 2.5},
            "salt": "test",
        },
    )
    return go_live(deployment, maker=maker, checker=checker)
