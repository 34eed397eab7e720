"""A version the active deployments decide with cannot be retired, neither by asking nor by
activating another version of its item: a retired version still deciding would be a
decommissioned model, strategy or limit set in production."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from decisions.services import decision_make
from governance import services
from governance.exceptions import PreconditionFailed
from governance.models import AuditAction, AuditEvent, Version, VersionStatus
from tests.decisions.conftest import go_live
from tests.decisions.test_decision_log import features

pytestmark = pytest.mark.django_db


def version(kind: str, name: str, number: int) -> Version:
    return Version.objects.get(item__kind=kind, item__name=name, number=number)


def retire_events() -> int:
    return AuditEvent.objects.filter(action=AuditAction.RETIRE).count()


@pytest.mark.parametrize(
    ("kind", "name"),
    [("model", "take-up"), ("strategy", "cross-sell"), ("constraint_set", "cross-sell-limits")],
)
def test_retiring_what_the_active_deployment_uses_is_refused_naming_it(
    cross_sell_deployment, checker, kind, name
):
    target = version(kind, name, 1)
    status = target.status
    with pytest.raises(PreconditionFailed) as refused:
        services.version_retire(actor=checker, version=target, comment="end of life")
    assert refused.value.code == "version_in_use"
    assert refused.value.details == {"used_by": ["deployment cross-sell v1"]}
    assert "Activate a deployment version that does not, first." in refused.value.message
    assert version(kind, name, 1).status == status
    assert retire_events() == 0


def test_the_api_answers_422_with_the_deployments_in_the_way(cross_sell_deployment, checker):
    client = APIClient()
    client.force_authenticate(checker)
    answer = client.post(
        "/api/v1/registry/strategies/cross-sell/versions/1/retire/",
        {"comment": "end of life"},
        format="json",
    )
    assert answer.status_code == 422, answer.content
    error = answer.json()["error"]
    assert error["code"] == "version_in_use"
    assert error["message"].startswith("Strategy cross-sell v1 cannot be retired")


def test_a_new_version_goes_live_deployment_first_then_the_old_one_retires(
    cross_sell_deployment, maker, checker, api_client_user
):
    old = version("strategy", "cross-sell", 1)
    new = services.version_create(
        actor=maker, kind="strategy", name="cross-sell", content=old.content
    )
    new = services.version_approve(
        actor=checker, version=services.version_submit(actor=maker, version=new), comment="ok"
    )
    # Activating it would retire v1, which the live deployment still decides with.
    with pytest.raises(
        PreconditionFailed, match="would retire v1, and deployment cross-sell v1 decides with it"
    ):
        services.version_activate(actor=checker, version=new)
    assert version("strategy", "cross-sell", 1).status == VersionStatus.ACTIVE

    # Move the deployment first; then the strategy's new version goes live and v1 retires.
    content = {**cross_sell_deployment.content, "strategy": {"name": "cross-sell", "version": 2}}
    go_live(
        services.version_create(actor=maker, kind="deployment", name="cross-sell", content=content),
        maker=maker,
        checker=checker,
    )
    services.version_activate(actor=checker, version=new)
    assert version("strategy", "cross-sell", 1).status == VersionStatus.RETIRED
    decision = decision_make(
        actor=api_client_user, deployment="cross-sell", customer_id="c-1", features=features(1)
    ).decision
    assert decision.versions["strategy"]["version"] == 2


def test_challenger_arms_count_and_unused_versions_retire(cross_sell_deployment, maker, checker):
    limits = version("constraint_set", "cross-sell-limits", 1)
    spare = go_live(
        services.version_create(
            actor=maker, kind="constraint_set", name="spare-limits", content=limits.content
        ),
        maker=maker,
        checker=checker,
    )
    content = {
        **cross_sell_deployment.content,
        "challengers": [
            {
                "arm": "challenger",
                "share": 0.1,
                "strategy": cross_sell_deployment.content["strategy"],
                "constraint_set": {"name": "spare-limits", "version": spare.number},
                "prices": {},
            }
        ],
    }
    go_live(
        services.version_create(actor=maker, kind="deployment", name="cross-sell", content=content),
        maker=maker,
        checker=checker,
    )
    with pytest.raises(PreconditionFailed, match="deployment cross-sell v2 decides with it"):
        services.version_retire(actor=checker, version=spare, comment="gone")
    # A version no active deployment uses retires as before.
    other = go_live(
        services.version_create(
            actor=maker, kind="constraint_set", name="unused-limits", content=limits.content
        ),
        maker=maker,
        checker=checker,
    )
    assert services.version_retire(actor=checker, version=other, comment="gone").status == (
        VersionStatus.RETIRED
    )


def test_a_deployment_over_a_draft_arm_cannot_be_submitted(cross_sell_deployment, maker, checker):
    """Submitting over a draft would leave a version no checker could approve; the maker is
    told which dependency to submit first, and nothing moves."""
    limits = version("constraint_set", "cross-sell-limits", 1)
    draft_limits = services.version_create(
        actor=maker, kind="constraint_set", name="new-limits", content=limits.content
    )
    content = {
        **cross_sell_deployment.content,
        "challengers": [
            {
                "arm": "challenger",
                "share": 0.2,
                "strategy": cross_sell_deployment.content["strategy"],
                "constraint_set": {"name": "new-limits", "version": draft_limits.number},
                "prices": {},
            }
        ],
    }
    deployment = services.version_create(
        actor=maker, kind="deployment", name="cross-sell", content=content
    )
    client = APIClient()
    client.force_authenticate(maker)
    url = f"/api/v1/registry/deployments/cross-sell/versions/{deployment.number}/submit/"
    response = client.post(url, {})
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "dependency_not_submitted"
    assert "constraint set new-limits v1 (draft)" in error["message"]
    assert error["details"]["versions"] == ["constraint set new-limits v1 (draft)"]
    deployment.refresh_from_db()
    assert deployment.status == VersionStatus.DRAFT

    services.version_submit(actor=maker, version=draft_limits)
    assert client.post(url, {}).status_code == 200
    deployment.refresh_from_db()
    assert deployment.status == VersionStatus.SUBMITTED


def test_a_deployment_cannot_go_live_over_a_retired_model(approved_model, maker, checker):
    """The strategy was approved while its model was; the model was retired since (no
    active deployment used it). A deployment over that strategy would decide with a
    retired model: refused at submit, and at approve for one already submitted."""
    from decisions.demo_portfolio import cross_sell_constraints, cross_sell_strategy

    strategy = services.version_create(
        actor=maker,
        kind="strategy",
        name="cross-sell",
        content=cross_sell_strategy(model_name="take-up", model_version=approved_model.number),
    )
    services.version_submit(actor=maker, version=strategy)
    services.version_approve(actor=checker, version=strategy, comment="Reviewed.")
    limits = services.version_create(
        actor=maker,
        kind="constraint_set",
        name="cross-sell-limits",
        content=cross_sell_constraints(strategy_name="cross-sell"),
    )
    services.version_submit(actor=maker, version=limits)
    services.version_approve(actor=checker, version=limits, comment="Reviewed.")
    deployment = services.version_create(
        actor=maker,
        kind="deployment",
        name="cross-sell",
        content={
            "strategy": {"name": "cross-sell", "version": 1},
            "constraint_set": {"name": "cross-sell-limits", "version": 1},
            "salt": "s",
        },
    )
    submitted = services.version_submit(actor=maker, version=deployment)
    services.version_retire(actor=checker, version=approved_model, comment="Superseded.")
    with pytest.raises(PreconditionFailed) as refused:
        services.version_approve(actor=checker, version=submitted, comment="Reviewed.")
    assert refused.value.details == {"versions": ["model take-up v1 (retired)"]}
    assert "can never be approved: reject this one" in refused.value.message
    services.version_reject(actor=checker, version=submitted, comment="Its model is retired.")
    again = services.version_create(
        actor=maker, kind="deployment", name="cross-sell", content=deployment.content
    )
    with pytest.raises(PreconditionFailed) as refused:
        services.version_submit(actor=maker, version=again)
    assert refused.value.code == "dependency_not_submitted"
    assert refused.value.details == {"versions": ["model take-up v1 (retired)"]}


@pytest.mark.parametrize("status", ["rejected", "retired"])
def test_a_strategy_over_a_rejected_or_retired_model_cannot_be_submitted(
    register_model, maker, checker, status
):
    from decisions.demo_portfolio import cross_sell_strategy

    model = services.version_submit(actor=maker, version=register_model(maker))
    content = cross_sell_strategy(model_name="take-up", model_version=model.number)
    strategy = services.version_create(
        actor=maker, kind="strategy", name="cross-sell", content=content
    )
    if status == "rejected":
        services.version_reject(actor=checker, version=model, comment="No.")
    else:
        services.version_approve(actor=checker, version=model, comment="Yes.")
        services.version_retire(actor=checker, version=model, comment="Gone.")
    with pytest.raises(PreconditionFailed) as refused:
        services.version_submit(actor=maker, version=strategy)
    assert refused.value.details == {"models": [f"take-up v1 ({status})"]}
