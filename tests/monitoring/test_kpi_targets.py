"""KPI targets are governed: drafted by a maker, approved by another person, then shown."""

from __future__ import annotations

import pytest

from governance import services
from governance.content_diff import content_changes
from governance.exceptions import (
    FourEyesViolation,
    PermissionDenied,
    PreconditionFailed,
    ValidationFailed,
)
from governance.kinds import kind_get
from governance.models import Item
from monitoring.selectors import kpi_report

pytestmark = pytest.mark.django_db

TARGETS = {
    "description": "Cross-sell targets for 2026.",
    "targets": {
        "take_up_rate": {"target": 0.08},
        "latency_p99_ms": {"target": 250},
        "complaint_rate": {"target": 0.002, "note": "conduct risk appetite"},
    },
}


def draft(maker, content=TARGETS, name="cross-sell"):
    return services.version_create(actor=maker, kind="kpi_targets", name=name, content=content)


def test_content_is_normalised_with_directions_from_the_catalog(maker):
    version = draft(maker)
    assert version.content == {
        "description": "Cross-sell targets for 2026.",
        "targets": {
            "complaint_rate": {
                "target": 0.002,
                "direction": "at_most",
                "note": "conduct risk appetite",
            },
            "latency_p99_ms": {"target": 250, "direction": "at_most", "note": ""},
            "take_up_rate": {"target": 0.08, "direction": "at_least", "note": ""},
        },
    }


def test_bad_targets_are_refused_field_by_field(maker):
    with pytest.raises(ValidationFailed) as caught:
        draft(
            maker,
            {
                "targets": {
                    "happiness": {"target": 1},
                    "take_up_rate": {"target": 1.5},
                    "default_rate": {"target": "low", "direction": "sideways"},
                    "profit": {"goal": 1},
                },
                "owner": "me",
            },
        )
    details = caught.value.details
    assert set(details) == {
        "owner",
        "targets.happiness",
        "targets.take_up_rate.target",
        "targets.default_rate.target",
        "targets.default_rate.direction",
        "targets.profit.target",
        "targets.profit.goal",
    }
    with pytest.raises(ValidationFailed):
        draft(maker, {"targets": {}})


def test_four_eyes_and_roles_hold_for_targets(deployment, maker, checker, checker2, make_user):
    version = draft(maker)
    with pytest.raises(PermissionDenied):
        services.version_submit(actor=checker, version=version)
    submitted = services.version_submit(actor=maker, version=version)
    # A maker may not approve; a checker who wrote the version may not either.
    with pytest.raises(PermissionDenied):
        services.version_approve(actor=maker, version=submitted, comment="Reviewed.")
    both = make_user("mo-both", "maker", "checker")
    Item.objects.create(kind="deployment", name="cross-sell-2", created_by=maker)
    own = services.version_submit(
        actor=both,
        version=services.version_create(
            actor=both, kind="kpi_targets", name="cross-sell-2", content=TARGETS
        ),
    )
    with pytest.raises(FourEyesViolation):
        services.version_approve(actor=both, version=own, comment="Reviewed.")
    approved = services.version_approve(actor=checker2, version=submitted, comment="Reviewed.")
    assert approved.reviewed_by == checker2


def test_targets_need_a_deployment_of_that_name(maker, checker):
    """Refused at submit already: under review, no checker could approve them, and their
    maker could not take them back."""
    version = draft(maker, name="nowhere")
    with pytest.raises(PreconditionFailed, match="no deployment called 'nowhere'"):
        services.version_submit(actor=maker, version=version)
    version.refresh_from_db()
    assert version.status == "draft"
    # A deployment of that name, even a draft, is enough to submit them with it.
    Item.objects.create(kind="deployment", name="nowhere", created_by=maker)
    assert services.version_submit(actor=maker, version=version).status == "submitted"


def test_active_targets_appear_in_the_kpi_report(
    deployment, make_decision, maker, checker, auditor
):
    from datetime import UTC, datetime, timedelta

    at = datetime(2026, 3, 2, 10, tzinfo=UTC)
    make_decision(at=at, latency_ms=100)
    make_decision(at=at, latency_ms=300)
    version = services.version_submit(actor=maker, version=draft(maker))
    version = services.version_approve(actor=checker, version=version, comment="Reviewed.")
    services.version_activate(actor=checker, version=version)
    report = kpi_report(
        actor=auditor, deployment="cross-sell", since=at, until=at + timedelta(days=1)
    )
    kpis = {k["key"]: k for k in report["kpis"]}
    assert report["targets_version"] == {"name": "cross-sell", "version": 1}
    p99 = kpis["latency_p99_ms"]
    assert (p99["target"], p99["direction"], p99["met"]) == (250, "at_most", False)
    take_up = kpis["take_up_rate"]  # two card offers, nothing reported yet: 0 of 2
    assert (take_up["value"], take_up["target"], take_up["met"]) == (0.0, 0.08, False)
    assert kpis["profit"]["target"] is None and kpis["profit"]["met"] is None
    # The review of the targets themselves counts towards the review cycle.
    assert kpis["review_cycle_hours"]["value"] is None  # approved today, outside March


def test_reviewers_read_targets_and_their_changes_in_words(maker):
    kind = kind_get("kpi_targets")
    sections = kind.present(draft(maker).content)
    assert [s.title for s in sections] == ["KPI targets", "Targets"]
    assert [row[0].text for row in sections[1].rows] == ["Complaints", "Latency p99", "Take-up"]
    new = {
        "description": "Cross-sell targets for 2026.",
        "targets": {
            "take_up_rate": {"target": 0.1, "direction": "at_least", "note": ""},
            "opt_out_rate": {"target": 0.01, "direction": "at_most", "note": ""},
        },
    }
    old = draft(maker).content
    texts = [c.text for c in content_changes(kind, old, new)]
    assert "target for take_up_rate: target changed from 0.08 to 0.1" in texts
    assert "target for opt_out_rate added" in texts
    assert "target for complaint_rate removed" in texts


def test_the_registry_api_serves_kpi_targets(maker, client_of):
    response = client_of(maker).post(
        "/api/v1/registry/kpi-targets/cross-sell/versions/",
        {"content": TARGETS},
        format="json",
    )
    assert response.status_code == 201, response.content
    bad = client_of(maker).post(
        "/api/v1/registry/kpi-targets/cross-sell/versions/",
        {"content": {"targets": {"take_up_rate": {"target": 2}}}},
        format="json",
    )
    assert bad.status_code == 400
    assert "content.targets.take_up_rate.target" in bad.json()["error"]["details"]


def test_the_reviewer_page_shows_the_targets(deployment, maker, checker, client):
    from django.urls import reverse

    version = services.version_submit(actor=maker, version=draft(maker))
    client.force_login(checker)
    url = reverse(
        "ui:version-detail", kwargs={"slug": "kpi-targets", "name": "cross-sell", "number": 1}
    )
    page = client.get(url)
    assert page.status_code == 200
    text = page.content.decode()
    assert "Take-up" in text and "conduct risk appetite" in text and "at least" in text
    assert version.status == "submitted"
    queue = client.get(reverse("ui:review-queue")).content.decode()
    assert "cross-sell" in queue


@pytest.mark.parametrize("key", ["kpi_targets", "alert_rules", "report_recipients"])
def test_the_example_a_new_item_starts_from_is_valid_as_it_stands(key):
    """The reviewer pages prefill a new item with it: a maker edits working content."""
    from governance.kinds import kind_get

    kind = kind_get(key)
    assert kind.example is not None
    example = kind.example()
    assert kind.validate(example) == kind.validate(kind.validate(example))
