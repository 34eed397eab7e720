"""Unicode direction controls are refused in what reviewers read: a note, a reason or a
content string with U+202E would display in another order than it is stored."""

from __future__ import annotations

import pytest

from governance import services
from governance.exceptions import ValidationFailed
from governance.models import AuditEvent, Version
from tests.governance.factories import note_version

pytestmark = pytest.mark.django_db

OVERRIDE = "\u202e"  # RIGHT-TO-LEFT OVERRIDE


def test_a_draft_with_a_direction_control_is_refused_naming_where(maker):
    events = AuditEvent.objects.count()
    with pytest.raises(ValidationFailed) as refused:
        services.version_create(
            actor=maker,
            kind="note",
            name="house-rules",
            content={"text": f"approve {OVERRIDE}evorppa ton"},
            change_note=f"typo{OVERRIDE} fix",
        )
    assert refused.value.details == {
        "text": ["a Unicode direction control character; remove it"],
        "change_note": ["a Unicode direction control character; remove it"],
    }
    assert "another order than it is stored" in refused.value.message
    assert not Version.objects.exists() and AuditEvent.objects.count() == events


def test_an_edit_or_a_reason_with_one_is_refused_and_changes_nothing(maker, checker):
    draft = note_version(maker=maker, checker=checker)
    with pytest.raises(ValidationFailed):
        services.version_update(actor=maker, version=draft, content={"text": "a\u2066b"})
    draft.refresh_from_db()
    assert draft.content == {"text": "be kind"}
    services.version_move(actor=maker, version=draft, move="submit")
    with pytest.raises(ValidationFailed) as refused:
        services.version_move(
            actor=checker, version=draft, move="approve", comment=f"fine{OVERRIDE}"
        )
    assert refused.value.details == {
        "comment": ["a Unicode direction control character; remove it"]
    }
    draft.refresh_from_db()
    assert draft.status == "submitted"


def test_right_to_left_text_itself_is_welcome(maker):
    version = services.version_create(
        actor=maker, kind="note", name="house-rules", content={"text": "שלום עולם مرحبا"}
    )
    assert version.content["text"] == "שלום עולם مرحبا"
