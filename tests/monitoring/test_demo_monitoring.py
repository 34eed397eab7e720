"""The demo decides for simulated customers and reports their outcomes, with KPI targets."""

from __future__ import annotations

import io

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import override_settings

from decisions.models import Decision
from governance.audit import audit_chain_verify
from governance.models import Version, VersionStatus
from monitoring.demo_activity import DEMO_DECISIONS
from monitoring.models import Outcome
from monitoring.selectors import kpi_report

pytestmark = pytest.mark.django_db


@override_settings(DEBUG=True)
def test_the_demo_gives_the_monitoring_pages_real_content():
    out = io.StringIO()
    call_command("demo", "--no-serve", stdout=out)
    assert "Monitoring: 180 decisions by lending-app with" in out.getvalue()
    assert Decision.objects.count() == 3 * DEMO_DECISIONS
    assert Outcome.objects.count() > 100
    assert not Outcome.objects.exclude(decision__client__username="lending-app").exists()
    targets = Version.objects.filter(item__kind="kpi_targets", status=VersionStatus.ACTIVE)
    assert sorted(v.item.name for v in targets) == ["collections", "cross-sell", "onboarding"]
    assert all(v.reviewed_by.username == "checker" for v in targets)
    assert audit_chain_verify().ok

    auditor = get_user_model().objects.get(username="auditor")
    for name in ("onboarding", "cross-sell", "collections"):
        kpis = {k["key"]: k for k in kpi_report(actor=auditor, deployment=name)["kpis"]}
        assert kpis["decision_volume"]["value"] == DEMO_DECISIONS
        assert kpis["latency_p99_ms"]["target"] == 500
        assert kpis["realised_value"]["value"] != 0
    onboarding = {k["key"]: k for k in kpi_report(actor=auditor, deployment="onboarding")["kpis"]}
    assert 0 < onboarding["take_up_rate"]["value"] < 1

    outcomes, versions = Outcome.objects.count(), Version.objects.count()
    again = io.StringIO()
    call_command("demo", "--no-serve", stdout=again)
    assert "Monitoring: decisions and outcomes already present." in again.getvalue()
    assert (Outcome.objects.count(), Version.objects.count()) == (outcomes, versions)
