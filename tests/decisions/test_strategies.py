"""Strategy and constraint-set versions: validated structure and expressions, approved models."""

from __future__ import annotations

import copy

import pytest
from rest_framework.test import APIClient

from decisions.demo_portfolio import cross_sell_constraints, cross_sell_strategy
from governance import services
from governance.exceptions import PreconditionFailed, ValidationFailed
from governance.models import Version, VersionStatus

pytestmark = pytest.mark.django_db


@pytest.fixture
def strategy_content(register_model, maker):
    model = register_model(maker)
    return cross_sell_strategy(model_name="take-up", model_version=model.number)


def create(actor, kind, name, content):
    return services.version_create(actor=actor, kind=kind, name=name, content=content)


def test_valid_strategy_and_constraint_set(strategy_content, maker):
    strategy = create(maker, "strategy", "cross-sell", strategy_content)
    assert strategy.content["fallback_action"] == "none"
    limits = create(
        maker, "constraint_set", "cross-sell-q1", cross_sell_constraints(strategy_name="cross-sell")
    )
    assert [p["name"] for p in limits.content["portfolio"]] == ["marketing_budget", "new_exposure"]


def test_expression_errors_name_field_and_position(strategy_content, maker):
    content = copy.deepcopy(strategy_content)
    content["value"] = "p_acept * apr * limit - cost"
    content["eligibility"][0]["rule"] = "limit <= 0.25 * * income"
    content["eligibility"][1]["rule"] = "limit * 2"
    with pytest.raises(ValidationFailed) as invalid:
        create(maker, "strategy", "s", content)
    details = invalid.value.details
    assert details["value"] == ["unknown name 'p_acept' at position 0; did you mean 'p_accept'?"]
    assert "unexpected '*' at position 16" in details["eligibility[0].rule"][0]
    assert "must be a condition" in details["eligibility[1].rule"][0]


def test_hostile_expression_is_refused(strategy_content, maker):
    content = copy.deepcopy(strategy_content)
    content["value"] = "__import__('os').system('true')"
    with pytest.raises(ValidationFailed) as invalid:
        create(maker, "strategy", "s", content)
    assert "value" in invalid.value.details


def test_structure_errors(strategy_content, maker):
    content = copy.deepcopy(strategy_content)
    content["actions"][1]["attributes"]["apr"] = "high"
    content["actions"][2]["id"] = "card"
    content["fallback_action"] = "nothing"
    content["predictions"][0]["model"] = {"name": "no-such-model", "version": 1}
    content["surprise"] = True
    with pytest.raises(ValidationFailed) as invalid:
        create(maker, "strategy", "s", content)
    details = invalid.value.details
    for field in (
        "actions[1].attributes.apr",
        "actions[2].id",
        "fallback_action",
        "predictions[0].model",
        "surprise",
    ):
        assert field in details, field


def test_constraint_set_names_are_checked_against_its_strategy(strategy_content, maker):
    create(maker, "strategy", "cross-sell", strategy_content)
    content = cross_sell_constraints(strategy_name="cross-sell")
    content["portfolio"][0]["expression"] = "costs"
    content["portfolio"][1]["sense"] = "<"
    content["rules"][0]["rule"] = "apr"
    with pytest.raises(ValidationFailed) as invalid:
        create(maker, "constraint_set", "limits", content)
    details = invalid.value.details
    assert "did you mean 'cost'" in details["portfolio[0].expression"][0]
    assert "portfolio[1].sense" in details
    assert "rules[0].rule" in details
    with pytest.raises(ValidationFailed) as orphan:
        create(maker, "constraint_set", "limits", cross_sell_constraints(strategy_name="nope"))
    assert "strategy" in orphan.value.details


def test_strategy_cannot_be_submitted_over_a_draft_model(strategy_content, maker):
    strategy = create(maker, "strategy", "cross-sell", strategy_content)
    client = APIClient()
    client.force_authenticate(maker)
    response = client.post("/api/v1/registry/strategies/cross-sell/versions/1/submit/", {})
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "dependency_not_submitted"
    assert "take-up v1 (draft)" in error["message"]
    strategy.refresh_from_db()
    assert strategy.status == VersionStatus.DRAFT

    model = Version.objects.get(item__kind="model")
    services.version_submit(actor=maker, version=model)
    response = client.post("/api/v1/registry/strategies/cross-sell/versions/1/submit/", {})
    assert response.status_code == 200
    strategy.refresh_from_db()
    assert strategy.status == VersionStatus.SUBMITTED


def test_strategy_cannot_be_approved_before_its_model(strategy_content, maker, checker):
    model = Version.objects.get(item__kind="model")
    services.version_submit(actor=maker, version=model)
    strategy = create(maker, "strategy", "cross-sell", strategy_content)
    services.version_submit(actor=maker, version=strategy)
    client = APIClient()
    client.force_authenticate(checker)
    response = client.post("/api/v1/registry/strategies/cross-sell/versions/1/approve/", {})
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "dependency_not_approved"
    assert "take-up v1 (submitted)" in response.json()["error"]["message"]
    assert "Approve those first" in response.json()["error"]["message"]
    strategy.refresh_from_db()
    assert strategy.status == VersionStatus.SUBMITTED

    services.version_approve(actor=checker, version=model, comment="Reviewed.")
    approved = services.version_approve(actor=checker, version=strategy, comment="Reviewed.")
    assert approved.status == VersionStatus.APPROVED


def test_approve_hook_refusal_is_a_precondition_error(strategy_content, maker, checker):
    services.version_submit(actor=maker, version=Version.objects.get(item__kind="model"))
    strategy = create(maker, "strategy", "cross-sell", strategy_content)
    services.version_submit(actor=maker, version=strategy)
    with pytest.raises(PreconditionFailed):
        services.version_approve(actor=checker, version=strategy, comment="Reviewed.")
