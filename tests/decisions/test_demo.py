"""The demo: users, approved and active content, and one strategy awaiting review."""

from __future__ import annotations

import io
import re

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import override_settings

from governance.audit import audit_chain_verify
from governance.models import Version, VersionStatus
from governance.roles import roles_of

pytestmark = pytest.mark.django_db


@override_settings(DEBUG=True)
def test_demo_loads_once_and_can_be_run_again():
    out = io.StringIO()
    call_command("demo", "--no-serve", stdout=out)
    text = out.getvalue()
    assert "maker" in text and "checker" in text and "auditor" in text
    active = {
        (v.item.kind, v.item.name): v.status
        for v in Version.objects.select_related("item").filter(status=VersionStatus.ACTIVE)
    }
    for name in ("collections", "onboarding", "cross-sell"):
        assert active[("deployment", name)] == "active"
        assert active[("strategy", name)] == "active"
        assert active[("constraint_set", f"{name}-limits")] == "active"
    models = [key for key in active if key[0] == "model"]
    assert len(models) == 6
    waiting = Version.objects.get(status=VersionStatus.SUBMITTED)
    assert (waiting.item.name, waiting.number, waiting.submitted_by.username) == (
        "cross-sell",
        2,
        "maker",
    )
    assert roles_of(waiting.submitted_by) == {"maker"}
    assert audit_chain_verify().ok
    # The demo's decisions are sealed (no beat runs in the embedded default) and verify.
    from decisions.decision_log import decision_log_verify

    log = decision_log_verify()
    assert log.ok and log.rows > 0 and log.unsealed == 0
    assert f"Decision log: {log.rows} decisions sealed in" in text
    # The auditor's replay of a sample of them, once.
    from decisions.models import ReplayCheck

    check = ReplayCheck.objects.get()
    assert (check.status, check.identical, check.ok) == ("done", 100, True)
    assert "Replay: 100 decisions drawn at random by auditor, all 100 replayed identically" in text

    assert (
        waiting.content
        != Version.objects.get(item__kind="strategy", item__name="cross-sell", number=1).content
    )
    # What the reviewer reads beside the stricter rule says the same as the rule.
    affordability = next(r for r in waiting.content["eligibility"] if r["name"] == "affordability")
    assert affordability["rule"] == "limit <= 0.25 * income"
    assert affordability["description"] == "New credit at most 25% of income."
    count = Version.objects.count()
    call_command("demo", "--no-serve", stdout=io.StringIO())
    assert Version.objects.count() == count
    assert ReplayCheck.objects.count() == 1


def test_demo_refuses_without_debug():
    with pytest.raises(CommandError, match="DEBUG"):
        call_command("demo", "--no-serve")


@override_settings(DEBUG=True)
@pytest.mark.parametrize(
    ("addrport", "sentence"),
    [
        ("127.0.0.1:99999", "is not a port from 1 to 65535"),
        ("notaport", "is not a port from 1 to 65535"),
        ("127.0.0.1:0", "is not a port from 1 to 65535"),
        ("999.1.1.1:8000", "names no valid IP address"),
        ("[::g]:8000", "is not a port from 1 to 65535"),
    ],
)
def test_demo_refuses_a_bad_addrport_before_loading_anything(addrport, sentence):
    out = io.StringIO()
    with pytest.raises(CommandError, match=rf"^--addrport '{re.escape(addrport)}' {sentence}"):
        call_command("demo", "--addrport", addrport, stdout=out)
    assert out.getvalue() == ""
    assert not Version.objects.exists()


@override_settings(DEBUG=True)
def test_demo_serves_where_addrport_says(monkeypatch):
    from django.core.management.commands import runserver

    served = []
    monkeypatch.setattr(
        runserver.Command, "handle", lambda self, *args, **options: served.append(options)
    )
    out = io.StringIO()
    call_command("demo", "--addrport", "8123", stdout=out)
    assert "Serving on http://127.0.0.1:8123/" in out.getvalue()
    assert served[0]["addrport"] == "8123"
