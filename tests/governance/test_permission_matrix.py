"""Every role x every move x every path (service, REST, admin action): only allowed ones work.

The actor never wrote or submitted the version, so four eyes do not get in the way:
what decides is the role alone. Paths must agree because they call the same service.
"""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from rest_framework.test import APIClient

from governance import services
from governance.exceptions import PermissionDenied
from governance.lifecycle import TRANSITIONS
from governance.models import Version, VersionStatus
from governance.roles import Role
from tests.governance.factories import note_version

pytestmark = pytest.mark.django_db

ROLES = [*Role.values, "no-role"]
SOURCE = {
    "edit": VersionStatus.DRAFT,
    "submit": VersionStatus.DRAFT,
    "approve": VersionStatus.SUBMITTED,
    "reject": VersionStatus.SUBMITTED,
    "activate": VersionStatus.APPROVED,
    "retire": VersionStatus.ACTIVE,
}
ALLOWED = {
    "create": {Role.MAKER},
    "edit": {Role.MAKER},
    **{move: set(t.roles) for move, t in TRANSITIONS.items()},
}
LIFECYCLE_MOVES = list(TRANSITIONS)


def test_the_matrix_covers_the_lifecycle_table():
    assert set(ALLOWED) == {"create", "edit", "submit", "approve", "reject", "activate", "retire"}
    assert ALLOWED["approve"] == {Role.CHECKER} and ALLOWED["submit"] == {Role.MAKER}


@pytest.fixture
def actor(request, make_user):
    role = request.param
    if role == "no-role":
        user = get_user_model().objects.create_user("actor", password="x-unused-password-1")
    else:
        user = make_user("actor", role)
    user.is_staff = True  # let everyone reach the admin: the service must refuse, not the page
    user.save(update_fields=["is_staff"])
    return user


def _setup(move, maker, checker):
    if move == "create":
        return None
    return note_version(maker=maker, checker=checker, status=SOURCE[move])


def _expected_status(move):
    return {"edit": VersionStatus.DRAFT, **{m: t.target for m, t in TRANSITIONS.items()}}[move]


def _outcome(move, version, before_versions):
    """True when the move took effect."""
    if move == "create":
        return Version.objects.count() > before_versions
    version.refresh_from_db()
    if move == "edit":
        return version.content == {"text": "edited"}
    return version.status == _expected_status(move)


@pytest.mark.parametrize("actor", ROLES, indirect=True)
@pytest.mark.parametrize("move", ["create", "edit", *LIFECYCLE_MOVES])
def test_service_path(actor, move, maker, checker):
    version = _setup(move, maker, checker)
    before = Version.objects.count()
    allowed = bool(set(ALLOWED[move]) & {g.name for g in actor.groups.all()})
    try:
        if move == "create":
            services.version_create(actor=actor, kind="note", name="x", content={"text": "x"})
        elif move == "edit":
            services.version_update(actor=actor, version=version, content={"text": "edited"})
        else:
            services.version_move(actor=actor, version=version, move=move, comment="because")
    except PermissionDenied:
        assert not allowed
    else:
        assert allowed
    assert _outcome(move, version, before) is allowed


@pytest.mark.parametrize("actor", ROLES, indirect=True)
@pytest.mark.parametrize("move", ["create", "edit", *LIFECYCLE_MOVES])
def test_rest_path(actor, move, maker, checker):
    version = _setup(move, maker, checker)
    before = Version.objects.count()
    allowed = bool(set(ALLOWED[move]) & {g.name for g in actor.groups.all()})
    client = APIClient()
    client.force_authenticate(actor)
    base = "/api/v1/registry/notes"
    if move == "create":
        response = client.post(f"{base}/x/versions/", {"content": {"text": "x"}}, format="json")
    elif move == "edit":
        response = client.patch(
            f"{base}/house-rules/versions/1/", {"content": {"text": "edited"}}, format="json"
        )
    else:
        response = client.post(
            f"{base}/house-rules/versions/1/{move}/", {"comment": "because"}, format="json"
        )
    assert response.status_code in ((200, 201) if allowed else (403,)), response.content
    assert _outcome(move, version, before) is allowed


@pytest.mark.parametrize("actor", ROLES, indirect=True)
@pytest.mark.parametrize("move", LIFECYCLE_MOVES)
def test_admin_action_path(actor, move, maker, checker):
    version = _setup(move, maker, checker)
    allowed = bool(set(ALLOWED[move]) & {g.name for g in actor.groups.all()})
    client = Client()
    client.force_login(actor)
    response = client.post(
        "/admin/governance/version/",
        {
            "action": f"move_{move}",
            "_selected_action": [str(version.pk)],
            "apply": "1",
            "comment": "because",
        },
        follow=True,
    )
    if response.status_code == 403:  # no admin view permission for this role
        assert not allowed
    else:
        messages = [str(m) for m in response.context["messages"]]
        if allowed:
            assert any("1 version(s)" in m for m in messages), messages
        else:
            assert any("may not" in m for m in messages), messages
    assert _outcome(move, version, 0) is allowed


def test_admin_asks_for_the_comment_before_moving(maker, checker):
    version = note_version(maker=maker, checker=checker, status=VersionStatus.SUBMITTED)
    checker.is_staff = True
    checker.save(update_fields=["is_staff"])
    client = Client()
    client.force_login(checker)
    page = client.post(
        "/admin/governance/version/",
        {"action": "move_reject", "_selected_action": [str(version.pk)]},
    )
    assert page.status_code == 200
    assert b"Comment (required)" in page.content
    refused = client.post(
        "/admin/governance/version/",
        {"action": "move_reject", "_selected_action": [str(version.pk)], "apply": "1"},
        follow=True,
    )
    assert any("comment is required" in str(m) for m in refused.context["messages"])
    version.refresh_from_db()
    assert version.status == VersionStatus.SUBMITTED
