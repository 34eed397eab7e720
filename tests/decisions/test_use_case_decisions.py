"""The demo's three deployments decide for simulated customers, with Reg B reasons on declines."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from decisions.demo_setup import demo_load
from decisions.models import Decision
from decisions.services import decision_make
from decisions.simulator.training import REASON_FACTORS, REASON_TEXTS
from decisions.simulator.use_cases import population

pytestmark = pytest.mark.django_db


def rows(frame):
    for record in frame.to_dict("records"):
        yield {k: (v.item() if hasattr(v, "item") else v) for k, v in record.items()}


@pytest.fixture
def demo():
    demo_load()
    return get_user_model().objects.get(username="lending-app")


@pytest.mark.parametrize("name", ["collections", "onboarding", "cross-sell"])
def test_each_demo_deployment_decides(demo, name):
    from decisions import runtime

    function = runtime.arm_runtime("champion", runtime.active_deployment(name).content).function
    people = population(name, 40, seed=11)
    chosen = set()
    for i, features in enumerate(rows(people)):
        wanted = {k: features[k] for k in function.features}
        decision = decision_make(
            actor=demo, deployment=name, customer_id=f"{name}-{i}", features=wanted
        ).decision
        chosen.add(decision.action_id)
        assert len(decision.reasons) <= 4
        assert decision.explanation["summary"]
    assert len(chosen) > 1, chosen
    assert Decision.objects.filter(deployment_name=name).count() == 40


def test_onboarding_declines_name_what_raised_the_risk(demo):
    from decisions import runtime

    function = runtime.arm_runtime(
        "champion", runtime.active_deployment("onboarding").content
    ).function
    people = population("onboarding", 300, seed=12)
    declines = []
    for i, features in enumerate(rows(people)):
        wanted = {k: features[k] for k in function.features}
        decision = decision_make(
            actor=demo, deployment="onboarding", customer_id=f"o-{i}", features=wanted
        ).decision
        if decision.action_id == "decline":
            declines.append(decision)
    assert declines, "the sample should contain declines"
    pd_inputs = {"limit", "apr"}
    for decision in declines:
        assert decision.reasons, decision.contributions
        assert all(r["contribution"] > 0 for r in decision.reasons)
        assert not {r["feature"] for r in decision.reasons} & pd_inputs
        risk = next(c for c in decision.contributions if c["quantity"] == "pd")
        ranked = sorted(
            (v, k) for k, v in risk["contributions"].items() if k not in pd_inputs and v > 0
        )[::-1]
        assert [r["feature"] for r in decision.reasons] == [k for _, k in ranked[:4]]
        # Worded as reasons for a refusal (the catalog's text) ...
        assert all(r["text"] == REASON_TEXTS[r["feature"]] for r in decision.reasons)


def test_offers_name_what_weighed_without_calling_it_a_shortcoming(demo):
    # A cross-sell offer or a collections treatment is no adverse action: its reasons are
    # the factors' neutral names, not "Income insufficient ..." on an approval.
    from decisions import runtime

    for name in ("cross-sell", "collections"):
        function = runtime.arm_runtime("champion", runtime.active_deployment(name).content).function
        for i, features in enumerate(rows(population(name, 30, seed=13))):
            wanted = {k: features[k] for k in function.features}
            decision = decision_make(
                actor=demo, deployment=name, customer_id=f"{name}-n{i}", features=wanted
            ).decision
            assert decision.reasons, decision.contributions
            for reason in decision.reasons:
                assert reason["text"] == REASON_FACTORS[reason["feature"]], reason


def test_warm_up_prepares_every_active_deployment(demo):
    from decisions import runtime

    runtime.clear_caches()
    assert sorted(runtime.warm_up()) == ["collections", "cross-sell", "onboarding"]
    assert len(runtime._explainers) == 6  # every model of every deployment is explain-ready
