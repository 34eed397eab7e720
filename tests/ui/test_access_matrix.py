"""Every reviewer page x every role: who gets the page, who gets 403, who goes to log in.

The pages check roles with the same helpers the services use; writes are then checked
again by the services (the move rows below assert what actually changed).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import get_resolver

from governance.models import Version, VersionStatus
from governance.roles import Role
from tests.ui.conftest import World

pytestmark = pytest.mark.django_db

MAKER, CHECKER, AUDITOR, API, ADMIN = (
    Role.MAKER,
    Role.CHECKER,
    Role.AUDITOR,
    Role.API_CLIENT,
    Role.ADMIN,
)
ANONYMOUS = "anonymous"
ROLES = [MAKER, CHECKER, AUDITOR, API, ADMIN, ANONYMOUS]
PEOPLE = {MAKER, CHECKER, AUDITOR, ADMIN}
READERS_OF_TRAIL = {CHECKER, AUDITOR, ADMIN}


@dataclass(frozen=True)
class Page:
    url_name: str
    method: str
    url: Callable[[World], str]
    allowed: frozenset[str]
    data: Callable[[World], dict] | None = None
    ok_status: int = 200


def _version(v: Version) -> str:
    slug = {"strategy": "strategies", "constraint_set": "constraint-sets"}[v.item.kind]
    return f"/registry/{slug}/{v.item.name}/v{v.number}/"


PAGES = [
    Page("dashboard", "GET", lambda w: "/", frozenset(PEOPLE)),
    Page("review-queue", "GET", lambda w: "/reviews/", frozenset(PEOPLE)),
    Page("registry-index", "GET", lambda w: "/registry/", frozenset(PEOPLE)),
    Page("registry", "GET", lambda w: "/registry/strategies/", frozenset(PEOPLE)),
    Page("version-detail", "GET", lambda w: _version(w.strategy_v2), frozenset(PEOPLE)),
    Page(
        "version-move",
        "POST",
        lambda w: _version(w.strategy_v2) + "move/",
        frozenset(PEOPLE),
        data=lambda w: {"move": "approve", "comment": "looks right"},
        ok_status=302,
    ),
    Page(
        "draft-create",
        "GET",
        lambda w: "/registry/strategies/cross-sell/new/",
        frozenset({MAKER}),
    ),
    Page(
        "draft-create",
        "POST",
        lambda w: "/registry/constraint-sets/cross-sell-limits/new/",
        frozenset({MAKER}),
        data=lambda w: {"content": _limits_json(w), "change_note": "copy"},
        ok_status=302,
    ),
    Page("item-create", "GET", lambda w: "/registry/alert-rules/new/", frozenset({MAKER})),
    Page(
        "item-create",
        "POST",
        lambda w: "/registry/constraint-sets/new/?from=cross-sell-limits",
        frozenset({MAKER}),
        data=lambda w: {"name": "copied-limits", "content": _limits_json(w)},
        ok_status=302,
    ),
    Page("draft-edit", "GET", lambda w: _version(w.limits_draft) + "edit/", frozenset({MAKER})),
    Page(
        "draft-edit",
        "POST",
        lambda w: _version(w.limits_draft) + "edit/",
        frozenset({MAKER}),
        data=lambda w: {"content": _limits_json(w), "change_note": "edited"},
        ok_status=302,
    ),
    Page("audit-trail", "GET", lambda w: "/audit/", frozenset(READERS_OF_TRAIL)),
    Page("password-change", "GET", lambda w: "/account/password/", frozenset(PEOPLE)),
    Page("decision-search", "GET", lambda w: "/decisions/?q=C-1042", frozenset(READERS_OF_TRAIL)),
    Page(
        "decision-log-verify",
        "POST",
        lambda w: "/decisions/verify/",
        frozenset(READERS_OF_TRAIL),
        ok_status=302,
    ),
    Page(
        "decision-replay-check-start",
        "POST",
        lambda w: "/decisions/replays/",
        frozenset(READERS_OF_TRAIL),
        data=lambda w: {"size": "1"},
        ok_status=302,
    ),
    Page(
        "decision-replay-check",
        "GET",
        lambda w: f"/decisions/replays/{_replay_check(w)}/",
        frozenset(READERS_OF_TRAIL),
    ),
    Page(
        "decision-detail",
        "GET",
        lambda w: f"/decisions/{w.decision.decision_id}/",
        frozenset(READERS_OF_TRAIL),
    ),
    Page(
        "decision-replay",
        "POST",
        lambda w: f"/decisions/{w.decision.decision_id}/replay/",
        frozenset(READERS_OF_TRAIL),
    ),
    Page("run-list", "GET", lambda w: "/optimisation/", frozenset(PEOPLE)),
    Page("run-detail", "GET", lambda w: f"/optimisation/{w.run.pk}/", frozenset(PEOPLE)),
    Page(
        "run-start",
        "POST",
        lambda w: "/optimisation/start/",
        frozenset({MAKER, ADMIN}),
        # The form as it comes: a simulation, its decisions not logged (that box unticked).
        data=lambda w: {
            "deployment": "cross-sell",
            "customers": "10",
            "seed": "1",
            "log_decisions": "file",
        },
        ok_status=302,
    ),
    Page(
        "run-cancel",
        "POST",
        lambda w: f"/optimisation/{w.run.pk}/cancel/",
        frozenset({MAKER, ADMIN}),
        ok_status=302,
    ),
    Page(
        "impact-start",
        "POST",
        lambda w: f"/impact/{w.strategy_v2.pk}/",
        frozenset({MAKER, CHECKER, ADMIN}),
        ok_status=302,
    ),
    Page(
        "run-publish",
        "POST",
        lambda w: f"/optimisation/{w.run.pk}/publish/",
        frozenset({MAKER}),
        ok_status=302,
    ),
    Page("monitoring", "GET", lambda w: "/monitoring/", frozenset(PEOPLE)),
    Page(
        "monitoring-deployment",
        "GET",
        lambda w: "/monitoring/deployments/cross-sell/",
        frozenset(PEOPLE),
    ),
    Page("alert-list", "GET", lambda w: "/monitoring/alerts/", frozenset(PEOPLE)),
    Page(
        "alert-evaluate",
        "POST",
        lambda w: "/monitoring/alerts/evaluate/",
        frozenset({ADMIN}),
        ok_status=302,
    ),
    Page("report-list", "GET", lambda w: "/monitoring/reports/", frozenset(PEOPLE)),
    Page(
        "report-send",
        "POST",
        lambda w: "/monitoring/reports/send/",
        frozenset({ADMIN}),
        ok_status=302,
        data=lambda w: {"confirm": "yes"},
    ),
    Page(
        "report-detail",
        "GET",
        lambda w: f"/monitoring/reports/{_archived_report(w)}/",
        frozenset(PEOPLE),
    ),
    Page(
        "report-email",
        "GET",
        lambda w: f"/monitoring/reports/{_archived_report(w)}/email/",
        frozenset(PEOPLE),
    ),
    Page("status", "GET", lambda w: "/status/", frozenset({ADMIN})),
    Page("drift-list", "GET", lambda w: "/drift/", frozenset(PEOPLE)),
    Page("drift-detail", "GET", lambda w: f"/drift/{_drift_report(w)}/", frozenset(PEOPLE)),
    Page(
        "drift-evidently",
        "GET",
        lambda w: f"/drift/{_drift_report(w)}/evidently/",
        frozenset(PEOPLE),
    ),
]


def _archived_report(world: World) -> int:
    """The id of an archived executive report (one per test)."""
    from django.utils import timezone

    from governance.services import version_create
    from monitoring.models import ExecutiveReport

    existing = ExecutiveReport.objects.first()
    if existing is not None:
        return existing.pk
    recipients = version_create(
        actor=world.strategy_v2.author,
        kind="report_recipients",
        name="executive",
        content={"recipients": ["cfo@bank.example"]},
    )
    now = timezone.now()
    return ExecutiveReport.objects.create(
        report_name="executive",
        recipients_version=recipients,
        trigger="manual",
        status="sent",
        created_at=now,
        sent_at=now,
        since=now,
        until=now,
        recipients=["cfo@bank.example"],
        subject="Arbiter executive report",
        text_body="ARBITER EXECUTIVE REPORT",
        html_body="<p>Arbiter executive report</p>",
        message="Subject: Arbiter executive report\n\nARBITER EXECUTIVE REPORT\n",
    ).pk


def _drift_report(world: World) -> int:
    """The id of a drift report of take-up v1 with its Evidently file (one per test)."""
    import hashlib
    from datetime import timedelta
    from pathlib import Path

    from django.conf import settings
    from django.utils import timezone

    from monitoring.models import DriftReport

    existing = DriftReport.objects.first()
    if existing is not None:
        return existing.pk
    html = b"<!DOCTYPE html><html><body><p>Evidently report</p></body></html>"
    path = Path(settings.ARTIFACT_ROOT) / "reports" / "drift" / "access-matrix.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(html)
    now = timezone.now()
    return DriftReport.objects.create(
        model_version=Version.objects.get(item__kind="model", item__name="take-up", number=1),
        window_start=now - timedelta(days=1),
        window_end=now,
        status="stable",
        decisions_in_window=1,
        current_rows=1,
        reference_rows=300,
        sample_limit=20_000,
        share_drifted=0.0,
        psi_score=0.01,
        psi_max=0.02,
        html_path="reports/drift/access-matrix.html",
        html_sha256=hashlib.sha256(html).hexdigest(),
        created_at=now,
    ).pk


def _replay_check(world: World) -> int:
    from django.utils import timezone

    from decisions.models import ReplayCheck

    check = ReplayCheck.objects.first() or ReplayCheck.objects.create(
        requested_by=world.run.created_by, requested_at=timezone.now(), size=1, seed=1
    )
    return check.pk


def _limits_json(world: World) -> str:
    import json

    content = dict(world.limits_draft.content)
    content["description"] = "Tuned by the access matrix."
    return json.dumps(content)


def test_the_matrix_covers_every_page_of_the_ui_namespace():
    resolver = get_resolver()
    names = {
        name for name in resolver.namespace_dict["ui"][1].reverse_dict if isinstance(name, str)
    }
    assert {page.url_name for page in PAGES} == names


@pytest.fixture
def actor(request, make_user):
    role = request.param
    if role == ANONYMOUS:
        return None
    return make_user(f"actor-{role.replace('_', '-')}", role)


@pytest.mark.parametrize("actor", ROLES, indirect=True)
@pytest.mark.parametrize("page", PAGES, ids=[f"{p.method}-{p.url_name}" for p in PAGES])
def test_page_access(page: Page, actor, world: World):
    client = Client()
    if actor is not None:
        client.force_login(actor)
    url = page.url(world)
    if page.method == "GET":
        response = client.get(url)
    else:
        response = client.post(url, page.data(world) if page.data else {})

    if actor is None:
        assert response.status_code == 302
        assert response["Location"].startswith("/accounts/login/?next=")
        return
    role = actor.groups.get().name
    if role in page.allowed:
        assert response.status_code == page.ok_status, response.content[:500]
    else:
        assert response.status_code == 403
        assert b"may not" in response.content and b"needs the role" in response.content


@pytest.mark.parametrize("actor", ROLES, indirect=True)
def test_posting_a_move_changes_the_version_only_for_the_role_the_lifecycle_names(
    actor, world: World
):
    client = Client()
    if actor is not None:
        client.force_login(actor)
    client.post(_version(world.strategy_v2) + "move/", {"move": "approve", "comment": "ok"})
    world.strategy_v2.refresh_from_db()
    approved = world.strategy_v2.status == VersionStatus.APPROVED
    assert approved is (actor is not None and actor.groups.get().name == CHECKER)


def test_a_user_without_any_role_is_refused_everywhere(world: World):
    nobody = get_user_model().objects.create_user("nobody", password="x-unused-password-1")
    client = Client()
    client.force_login(nobody)
    for page in PAGES:
        url = page.url(world)
        response = client.get(url) if page.method == "GET" else client.post(url, {})
        assert response.status_code == 403, url
