"""Alert rules are governed; a breach is stored, shown and e-mailed once, and again only
after it cleared."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.core.management import call_command
from django.test import Client

from governance import services
from governance.content_diff import content_changes
from governance.exceptions import (
    FourEyesViolation,
    NotFound,
    PermissionDenied,
    PreconditionFailed,
    ValidationFailed,
)
from governance.kinds import kind_get
from governance.models import Version
from governance.roles import Role
from monitoring.alerts import NO_DRIFT_REPORT, alerts_evaluate, drift_rule_check
from monitoring.models import Alert, AlertStatus, DriftReport
from monitoring.services import outcome_batch_record
from monitoring.tasks import alerts_evaluate_task
from tests.monitoring.conftest import go_live

pytestmark = pytest.mark.django_db

DAY = datetime(2026, 3, 10, tzinfo=UTC)
NOW = DAY + timedelta(days=1)
RULES = {
    "description": "Cross-sell alerts.",
    "rules": [
        {
            "name": "take-up-low",
            "kind": "kpi_below_target",
            "kpi": "take_up_rate",
            "recipients": ["Risk@Bank.example", "risk@bank.example", "cro@bank.example"],
        },
        {
            "name": "inputs-drift",
            "kind": "drift_share",
            "model": "take-up",
            "threshold": 0.3,
            "recipients": ["models@bank.example"],
        },
    ],
}


def activate_targets(maker, checker, target=0.5):
    return go_live(
        services.version_create(
            actor=maker,
            kind="kpi_targets",
            name="cross-sell",
            content={"targets": {"take_up_rate": {"target": target}}},
        ),
        maker=maker,
        checker=checker,
    )


def activate_rules(maker, checker, content=RULES):
    return go_live(
        services.version_create(
            actor=maker, kind="alert_rules", name="cross-sell", content=content
        ),
        maker=maker,
        checker=checker,
    )


@pytest.fixture
def watched(deployment, maker, checker):
    activate_targets(maker, checker)
    return activate_rules(maker, checker)


def decide(make_decision, api_client_user, *, n, accepted, at=DAY):
    """``n`` card offers on ``at``, the first ``accepted`` of them taken up."""
    decisions = [
        make_decision(at=at + timedelta(minutes=i), action="card", customer=f"c-{i}")
        for i in range(n)
    ]
    items = [
        {
            "decision_id": str(d.decision_id),
            "event": "accepted",
            "occurred_at": d.created_at + timedelta(hours=1),
        }
        for d in decisions[:accepted]
    ]
    if items:
        assert outcome_batch_record(actor=api_client_user, items=items).created == accepted
    return decisions


def states(evaluation):
    return {result.rule: result.state for result in evaluation.results}


# --- the governed kind ------------------------------------------------------------------


def test_rules_are_normalised_and_refused_field_by_field(maker):
    version = services.version_create(
        actor=maker, kind="alert_rules", name="cross-sell", content=RULES
    )
    first, second = version.content["rules"]
    assert first == {
        "name": "take-up-low",
        "kind": "kpi_below_target",
        "kpi": "take_up_rate",
        "window_days": 7,
        "min_decisions": 1,
        "recipients": ["cro@bank.example", "risk@bank.example"],
        "note": "",
    }
    assert second["threshold"] == 0.3 and second["model"] == "take-up"
    with pytest.raises(ValidationFailed) as caught:
        services.version_create(
            actor=maker,
            kind="alert_rules",
            name="cross-sell",
            content={
                "rules": [
                    {"name": "a", "kind": "kpi_below_target", "kpi": "joy", "recipients": []},
                    {
                        "name": "b",
                        "kind": "psi",
                        "model": "m",
                        "threshold": -1,
                        "recipients": ["x"],
                    },
                    {
                        "name": "b",
                        "kind": "drift_share",
                        "model": "m",
                        "threshold": 2,
                        "recipients": ["a@b.example"],
                        "kpi": "take_up_rate",
                    },
                    {"name": "c", "kind": "noise", "recipients": ["a@b.example"]},
                ]
            },
        )
    assert set(caught.value.details) == {
        "rules[0].kpi",
        "rules[0].recipients",
        "rules[1].threshold",
        "rules[1].recipients[0]",
        "rules[2].kpi",  # not a field of drift rules
        "rules[2].name",  # used twice
        "rules[2].threshold",  # a share above 1
        "rules[3].kind",
    }


def test_thresholds_pass_four_eyes_and_changes_read_in_words(
    deployment, maker, checker, admin_user
):
    version = services.version_create(
        actor=maker, kind="alert_rules", name="cross-sell", content=RULES
    )
    version = services.version_submit(actor=maker, version=version)
    with pytest.raises(PermissionDenied):
        services.version_approve(actor=maker, version=version, comment="Reviewed.")
    with pytest.raises(PermissionDenied):
        services.version_approve(actor=admin_user, version=version, comment="Reviewed.")
    # Rules waiting for review raise nothing: only the active version is evaluated.
    assert alerts_evaluate(now=NOW).results == []
    services.version_approve(actor=checker, version=version, comment="Reviewed.")
    assert alerts_evaluate(now=NOW).results == []
    services.version_activate(actor=checker, version=version)
    assert len(alerts_evaluate(now=NOW).results) == 2

    changed = {**RULES, "rules": [RULES["rules"][0], {**RULES["rules"][1], "threshold": 0.5}]}
    # Someone holding both roles may not approve the change they wrote.
    hybrid = services.user_create(
        actor=None,
        username="mo-both",
        password="x-unused-password-1",
        roles=[Role.MAKER, Role.CHECKER],
    )
    draft = services.version_create(
        actor=hybrid, kind="alert_rules", name="cross-sell", content=changed
    )
    draft = services.version_submit(actor=hybrid, version=draft)
    with pytest.raises(FourEyesViolation):
        services.version_approve(actor=hybrid, version=draft, comment="Reviewed.")
    texts = [
        c.text for c in content_changes(kind_get("alert_rules"), version.content, draft.content)
    ]
    assert texts == ["rule inputs-drift: threshold changed from 0.3 to 0.5"]


def test_rules_need_an_existing_deployment(maker, checker):
    version = services.version_create(
        actor=maker, kind="alert_rules", name="nowhere", content=RULES
    )
    with pytest.raises(PreconditionFailed) as caught:
        services.version_submit(actor=maker, version=version)
    assert caught.value.code == "unknown_deployment"


def test_drift_rules_on_a_model_the_deployment_does_not_use_are_refused(deployment, maker):
    # The page's example watches a model named take-up; a deployment deciding with other
    # models would never have its drift report, and the rule would never fire.
    content = {
        **RULES,
        "rules": [RULES["rules"][0], {**RULES["rules"][1], "model": "cross-sell-pd"}],
    }
    version = services.version_create(
        actor=maker, kind="alert_rules", name="cross-sell", content=content
    )
    with pytest.raises(PreconditionFailed) as caught:
        services.version_submit(actor=maker, version=version)
    assert caught.value.code == "unknown_model"
    assert caught.value.message == (
        "Deployment cross-sell does not decide with the model these rules watch (rule "
        "inputs-drift watches model cross-sell-pd), so they would never fire. Its models: "
        "take-up."
    )
    assert caught.value.details == {
        "rules.inputs-drift.model": ["not a model of deployment cross-sell"]
    }


# --- once per breach --------------------------------------------------------------------


def test_a_breach_is_stored_and_emailed_once_and_again_only_after_it_cleared(
    watched, make_decision, api_client_user
):
    # Take-up 1 in 4 = 25% against a target of at least 50%: breached.
    decide(make_decision, api_client_user, n=4, accepted=1)
    evaluation = alerts_evaluate(now=NOW)
    assert states(evaluation) == {"take-up-low": "opened", "inputs-drift": "not_evaluated"}
    alert = Alert.objects.get()
    assert alert.status == AlertStatus.OPEN
    assert alert.observed == 0.25 and alert.threshold == 0.5
    assert alert.rules_version == watched
    assert "Take-up is 25.0% over the last 7 days (4 decisions)" in alert.message
    assert len(mail.outbox) == 1
    sent = mail.outbox[0]
    assert sent.to == ["cro@bank.example", "risk@bank.example"]
    assert "take-up-low" in sent.subject and "25.0%" in sent.body
    alert.refresh_from_db()
    assert alert.notified_at is not None and alert.notify_attempts == 1

    # Still breached an hour later: the same alert, no second e-mail.
    evaluation = alerts_evaluate(now=NOW + timedelta(hours=1))
    assert states(evaluation)["take-up-low"] == "still_open"
    assert len(mail.outbox) == 1
    assert Alert.objects.count() == 1
    assert Alert.objects.get().last_seen_at == NOW + timedelta(hours=1)

    # Three more offers, all taken up: 4 of 7 = 57%: cleared, and nobody is e-mailed.
    decide(make_decision, api_client_user, n=3, accepted=3, at=DAY + timedelta(hours=2))
    evaluation = alerts_evaluate(now=NOW + timedelta(hours=2))
    assert states(evaluation)["take-up-low"] == "cleared"
    assert Alert.objects.get().status == AlertStatus.CLEARED
    assert len(mail.outbox) == 1
    assert states(alerts_evaluate(now=NOW + timedelta(hours=3)))["take-up-low"] == "ok"

    # Breached again: a new alert and a new e-mail.
    decide(make_decision, api_client_user, n=5, accepted=0, at=DAY + timedelta(hours=4))
    evaluation = alerts_evaluate(now=NOW + timedelta(hours=4))
    assert states(evaluation)["take-up-low"] == "opened"
    assert Alert.objects.count() == 2
    assert Alert.objects.filter(status=AlertStatus.OPEN).count() == 1
    assert len(mail.outbox) == 2


def test_too_few_decisions_or_no_target_leave_the_alert_alone(
    deployment, maker, checker, make_decision, api_client_user
):
    rules = {
        "rules": [
            {
                "name": "take-up-low",
                "kind": "kpi_below_target",
                "kpi": "take_up_rate",
                "min_decisions": 10,
                "recipients": ["risk@bank.example"],
            },
            {
                "name": "complaints",
                "kind": "kpi_below_target",
                "kpi": "complaint_rate",
                "recipients": ["risk@bank.example"],
            },
        ]
    }
    activate_targets(maker, checker)
    activate_rules(maker, checker, rules)
    decide(make_decision, api_client_user, n=4, accepted=0)
    evaluation = alerts_evaluate(now=NOW)
    assert states(evaluation) == {"take-up-low": "not_evaluated", "complaints": "not_evaluated"}
    messages = {r.rule: r.message for r in evaluation.results}
    assert "only 4 decisions" in messages["take-up-low"]
    assert "no governed target" in messages["complaints"]
    assert not Alert.objects.exists() and not mail.outbox


def test_drift_rules_wait_for_a_drift_report_then_alert(watched, make_decision, api_client_user):
    evaluation = alerts_evaluate(now=NOW)
    drift = next(r for r in evaluation.results if r.rule == "inputs-drift")
    assert drift.state == "not_evaluated" and NO_DRIFT_REPORT in drift.message

    model = Version.objects.get(item__kind="model", item__name="take-up")
    DriftReport.objects.create(
        model_version=model,
        window_start=DAY,
        window_end=NOW,
        status="act",
        decisions_in_window=100,
        current_rows=100,
        reference_rows=500,
        sample_limit=10_000,
        share_drifted=0.5,
        drifted_features=2,
        psi_score=0.31,
        psi_max=0.42,
        features=[{"name": "income", "psi": 0.42}, {"name": "age", "psi": 0.05}],
        created_at=NOW,
    )
    evaluation = alerts_evaluate(now=NOW)
    drift = next(r for r in evaluation.results if r.rule == "inputs-drift")
    assert drift.state == "opened"
    assert "50.0% of model take-up's features drifted" in drift.message
    assert mail.outbox[-1].to == ["models@bank.example"]


def test_psi_rules_read_the_feature_or_the_largest(deployment, maker, checker):
    activate_rules(
        maker,
        checker,
        {
            "rules": [
                {
                    "name": "psi-any",
                    "kind": "psi",
                    "model": "take-up",
                    "threshold": 0.25,
                    "recipients": ["m@bank.example"],
                },
                {
                    "name": "psi-utilisation",
                    "kind": "psi",
                    "model": "take-up",
                    "feature": "utilisation",
                    "threshold": 0.25,
                    "recipients": ["m@bank.example"],
                },
            ]
        },
    )
    model = Version.objects.get(item__kind="model", item__name="take-up")
    DriftReport.objects.create(
        model_version=model,
        window_start=DAY,
        window_end=NOW,
        status="act",
        decisions_in_window=10,
        current_rows=10,
        reference_rows=10,
        sample_limit=10,
        share_drifted=0.0,
        psi_score=0.1,
        psi_max=0.42,
        features=[{"name": "income", "psi": 0.42}, {"name": "utilisation", "psi": 0.05}],
        created_at=NOW,
    )
    assert states(alerts_evaluate(now=NOW)) == {"psi-any": "opened", "psi-utilisation": "ok"}


# --- PSI rules and the inputs a strategy sets ---------------------------------------------


@pytest.fixture
def onboarding(db):
    """The demo: onboarding decides with onboarding-pd, which takes the offer's limit and
    APR as inputs (set by the strategy) besides the applicant's."""
    from decisions.demo_setup import demo_load

    demo_load()
    users = get_user_model().objects
    model = Version.objects.get(item__kind="model", item__name="onboarding-pd", number=1)
    return users.get(username="maker"), users.get(username="checker"), model


def psi_rule(name, threshold, **more):
    return {
        "name": name,
        "kind": "psi",
        "model": "onboarding-pd",
        "threshold": threshold,
        "recipients": ["models@bank.example"],
        **more,
    }


def test_a_psi_rule_without_a_feature_reads_the_largest_psi_the_drift_report_states(
    onboarding,
):
    # It took the largest over every feature: "PSI of apr of model onboarding-pd is 0.624"
    # opened while the report said watch, largest PSI 0.111.
    maker, checker, model = onboarding
    go_live(
        services.version_create(
            actor=maker,
            kind="alert_rules",
            name="onboarding",
            content={"rules": [psi_rule("pd-psi", 0.25), psi_rule("pd-psi-watch", 0.1)]},
        ),
        maker=maker,
        checker=checker,
    )
    customer = [f["name"] for f in model.content["schema"] if f["name"] not in ("apr", "limit")]
    features = [
        {"name": name, "psi": 0.111 if name == customer[0] else 0.02, "set_by": "customer"}
        for name in customer
    ]
    features += [
        {"name": "apr", "psi": 0.624, "set_by": "strategy"},
        {"name": "limit", "psi": 0.4, "set_by": "strategy"},
    ]
    report = DriftReport.objects.create(
        model_version=model,
        window_start=DAY,
        window_end=NOW,
        status="watch",
        decisions_in_window=100,
        current_rows=100,
        reference_rows=2000,
        sample_limit=20_000,
        share_drifted=0.0,
        psi_score=0.05,
        psi_max=0.111,
        features=features,
        parameters={"set_by_strategy": ["apr", "limit"]},
        created_at=NOW,
    )
    out = io.StringIO()
    call_command("evaluate_alerts", "--deployment", "onboarding", stdout=out)
    lines = out.getvalue().splitlines()
    largest = (
        f"Largest PSI of model onboarding-pd (customer inputs and score) is 0.111, of {customer[0]}"
    )
    assert lines[0] == f"onboarding/pd-psi: ok: {largest} (threshold 0.250)."
    assert lines[1] == f"onboarding/pd-psi-watch: opened: {largest} (threshold 0.100)."
    alert = Alert.objects.get()
    assert alert.rule_name == "pd-psi-watch" and alert.observed == report.psi_max
    assert mail.outbox[-1].subject == "[Arbiter] Alert on onboarding: pd-psi-watch"
    # A rule on a strategy-set input approved before review refused it: not evaluated.
    check = drift_rule_check(psi_rule("pd-apr", 0.25, feature="apr"))
    assert check.breached is None
    assert check.message == (
        "model onboarding-pd: apr is set by the strategy, not the customer; drift reports "
        "leave it out of their status"
    )


def test_a_psi_rule_on_an_input_the_strategy_sets_or_a_feature_the_model_lacks_is_refused(
    onboarding,
):
    maker, checker, model = onboarding
    customer = next(f["name"] for f in model.content["schema"] if f["name"] not in ("apr", "limit"))

    def submit(*rules):
        version = services.version_create(
            actor=maker, kind="alert_rules", name="onboarding", content={"rules": list(rules)}
        )
        with pytest.raises(PreconditionFailed) as caught:
            services.version_submit(actor=maker, version=version)
        return caught.value

    refused = submit(psi_rule("pd-apr", 0.25, feature="apr"))
    assert refused.code == "feature_set_by_strategy"
    assert refused.message == (
        "PSI rules watch a customer input of their model or its score: rule pd-apr watches "
        "apr, which the strategy sets (an attribute of its actions), not the customer: it "
        "differs from model onboarding-pd's training data by design, and drift reports "
        "leave it out of their status and largest PSI. Name another feature, or leave "
        "feature out to watch the largest PSI."
    )
    assert refused.details == {
        "rules.pd-apr.feature": ["set by the strategy, not the customer: not watched for drift"]
    }
    refused = submit(
        psi_rule("pd-apr", 0.25, feature="apr"), psi_rule("pd-typo", 0.25, feature="incme")
    )
    assert refused.code == "unknown_feature"
    assert refused.message == (
        "PSI rules watch a customer input of their model or its score: rule pd-typo "
        "watches incme, which model onboarding-pd does not have (its customer inputs: "
        "bureau_score, debt_to_income, delinquencies, employment_type, income, "
        "months_on_book, utilisation; or score for the model's score), so it would never "
        "fire; rule pd-apr watches apr, which the strategy sets (an attribute of its "
        "actions), not the customer: it differs from model onboarding-pd's training data "
        "by design, and drift reports leave it out of their status and largest PSI. Name "
        "another feature, or leave feature out to watch the largest PSI."
    )
    assert refused.details == {
        "rules.pd-typo.feature": ["not a feature of model onboarding-pd"],
        "rules.pd-apr.feature": ["set by the strategy, not the customer: not watched for drift"],
    }
    # A customer input, the score, and no feature at all pass review.
    version = go_live(
        services.version_create(
            actor=maker,
            kind="alert_rules",
            name="onboarding",
            content={
                "rules": [
                    psi_rule("pd-input", 0.25, feature=customer),
                    psi_rule("pd-score", 0.25, feature="score"),
                    psi_rule("pd-any", 0.25),
                ]
            },
        ),
        maker=maker,
        checker=checker,
    )
    assert version.status == "active"


def test_an_alert_whose_rule_is_withdrawn_is_cleared(
    watched, maker, checker, make_decision, api_client_user
):
    decide(make_decision, api_client_user, n=4, accepted=0)
    alerts_evaluate(now=NOW)
    only_drift = {"rules": [RULES["rules"][1]]}
    activate_rules(maker, checker, only_drift)
    evaluation = alerts_evaluate(now=NOW + timedelta(hours=1))
    withdrawn = next(r for r in evaluation.results if r.rule == "take-up-low")
    assert withdrawn.state == "cleared" and "no longer in force" in withdrawn.message
    assert not Alert.objects.filter(status=AlertStatus.OPEN).exists()


def test_a_failed_email_is_recorded_and_retried_next_run(
    watched, make_decision, api_client_user, settings
):
    decide(make_decision, api_client_user, n=4, accepted=0)
    settings.EMAIL_BACKEND = "tests.monitoring.test_alerts.RefusingBackend"
    evaluation = alerts_evaluate(now=NOW)
    assert evaluation.notify_failed == 1 and evaluation.notified == 0
    alert = Alert.objects.get()
    assert alert.notified_at is None and "mail server down" in alert.notify_error
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    evaluation = alerts_evaluate(now=NOW + timedelta(hours=1))
    assert evaluation.notified == 1 and len(mail.outbox) == 1
    alert.refresh_from_db()
    assert alert.notified_at is not None and alert.notify_error == ""
    assert alerts_evaluate(now=NOW + timedelta(hours=2)).notified == 0


class RefusingBackend:
    def __init__(self, *args, **kwargs):
        pass

    def send_messages(self, messages):
        raise ConnectionRefusedError("mail server down")


def test_on_demand_evaluation_is_for_admins(watched, checker, admin_user):
    with pytest.raises(PermissionDenied):
        alerts_evaluate(actor=checker)
    assert alerts_evaluate(actor=admin_user).results
    with pytest.raises(NotFound):
        alerts_evaluate(actor=admin_user, deployment="nowhere")


def test_the_task_and_the_command_evaluate_the_same_rules(
    watched, make_decision, api_client_user, capsys
):
    decide(
        make_decision, api_client_user, n=4, accepted=0, at=datetime.now(UTC) - timedelta(hours=2)
    )
    assert alerts_evaluate_task.delay().get()["opened"] == 1
    call_command("evaluate_alerts", "--deployment", "cross-sell")
    out = capsys.readouterr().out
    assert "cross-sell/take-up-low: still open:" in out
    assert "cross-sell/inputs-drift: not evaluated: model take-up: no drift report yet" in out
    assert len(mail.outbox) == 1


def test_open_alerts_are_on_the_dashboard_and_the_alerts_page(
    watched, make_decision, api_client_user, auditor, admin_user
):
    decide(make_decision, api_client_user, n=4, accepted=0)
    alerts_evaluate(now=NOW)
    client = Client()
    client.force_login(auditor)
    page = client.get("/").content.decode()
    assert "Open alerts" in page and "take-up-low" in page and "Take-up is 0.0%" in page
    page = client.get("/monitoring/alerts/").content.decode()
    assert "take-up-low" in page and "Evaluate the rules now" not in page
    client.force_login(admin_user)
    assert "Evaluate the rules now" in client.get("/monitoring/alerts/").content.decode()
    response = client.post("/monitoring/alerts/evaluate/", follow=True)
    assert "Evaluated: 2 rules checked" in response.content.decode()
    # What was not evaluated says why, not only how many.
    said = [str(m) for m in response.context["messages"]]
    assert "Rule inputs-drift (cross-sell): model take-up: no drift report yet" in said


def test_only_makers_are_offered_the_link_to_write_alert_rules(auditor, maker):
    # It led checkers, auditors and admins to a 403.
    client = Client()
    client.force_login(auditor)
    page = client.get("/monitoring/alerts/").content.decode()
    assert "No active alert rules" in page and "/registry/alert-rules/new/" not in page
    client.force_login(maker)
    assert "/registry/alert-rules/new/" in client.get("/monitoring/alerts/").content.decode()
