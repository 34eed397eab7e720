"""The lifecycle services: who may do what, four eyes, sealed content, one active version."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, transaction

from governance import services
from governance.audit import audit_chain_verify
from governance.exceptions import (
    Conflict,
    ContentLocked,
    FourEyesViolation,
    PermissionDenied,
    TransitionNotAllowed,
    ValidationFailed,
)
from governance.models import AuditEvent, Item, Version, VersionStatus
from tests.governance.factories import note_version

pytestmark = pytest.mark.django_db


def test_draft_numbers_count_up_per_item_and_hash_covers_content(maker):
    first = services.version_create(actor=maker, kind="note", name="n", content={"text": "a"})
    second = services.version_create(actor=maker, kind="note", name="n", content={"text": "b"})
    other = services.version_create(actor=maker, kind="note", name="m", content={"text": "a"})
    assert (first.number, second.number, other.number) == (1, 2, 1)
    assert first.content_hash != second.content_hash
    assert first.content_hash == other.content_hash  # same content, same hash
    assert first.status == VersionStatus.DRAFT
    assert list(first.contributors.all()) == [maker]


def test_full_lifecycle_stamps_who_when_why(maker, checker):
    version = note_version(maker=maker, checker=checker, status=VersionStatus.SUBMITTED)
    assert version.submitted_by == maker and version.submitted_at is not None
    version = services.version_approve(actor=checker, version=version, comment="fine")
    assert (version.status, version.reviewed_by, version.review_comment) == (
        VersionStatus.APPROVED,
        checker,
        "fine",
    )
    version = services.version_activate(actor=checker, version=version)
    assert version.status == VersionStatus.ACTIVE and version.activated_by == checker
    actions = list(AuditEvent.objects.values_list("action", flat=True))
    assert actions[-4:] == ["create", "submit", "approve", "activate"]
    assert audit_chain_verify().ok


@pytest.mark.parametrize("move", ["approve", "reject"])
def test_four_eyes_author_cannot_review_even_with_checker_role(make_user, checker, move):
    both = make_user("pat-both", "maker", "checker")
    version = services.version_create(actor=both, kind="note", name="n", content={"text": "x"})
    services.version_submit(actor=both, version=version)
    before = AuditEvent.objects.count()
    with pytest.raises(FourEyesViolation) as refused:
        services.version_move(actor=both, version=version, move=move, comment="mine")
    assert refused.value.code == "four_eyes" and refused.value.status == 403
    version.refresh_from_db()
    assert version.status == VersionStatus.SUBMITTED
    assert AuditEvent.objects.count() == before  # a refusal writes nothing


def test_four_eyes_covers_every_contributor_and_the_submitter(make_user, maker, checker):
    editor = make_user("eve-editor", "maker", "checker")
    submitter = make_user("sam-submitter", "maker", "checker")
    version = services.version_create(actor=maker, kind="note", name="n", content={"text": "a"})
    services.version_update(actor=editor, version=version, content={"text": "b"})
    services.version_submit(actor=submitter, version=version)
    for person in (editor, submitter):
        with pytest.raises(FourEyesViolation):
            services.version_approve(actor=person, version=version, comment="Reviewed.")
    approved = services.version_approve(actor=checker, version=version, comment="Reviewed.")
    assert approved.status == VersionStatus.APPROVED


def test_content_is_sealed_once_submitted(maker, checker):
    version = note_version(maker=maker, checker=checker, status=VersionStatus.SUBMITTED)
    with pytest.raises(ContentLocked) as locked:
        services.version_update(actor=maker, version=version, content={"text": "sneaky"})
    assert locked.value.status == 409
    version.refresh_from_db()
    assert version.content == {"text": "be kind"}


def test_reject_needs_a_comment_and_rejected_cannot_be_approved(maker, checker):
    version = note_version(maker=maker, checker=checker, status=VersionStatus.SUBMITTED)
    with pytest.raises(ValidationFailed) as missing:
        services.version_reject(actor=checker, version=version, comment="  ")
    assert "comment" in missing.value.details
    version = services.version_reject(actor=checker, version=version, comment="too vague")
    with pytest.raises(TransitionNotAllowed) as refused:
        services.version_approve(actor=checker, version=version, comment="Reviewed.")
    assert refused.value.status == 409
    version.refresh_from_db()
    assert version.status == VersionStatus.REJECTED


def test_only_approved_versions_activate(maker, checker):
    draft = note_version(maker=maker, checker=checker)
    with pytest.raises(TransitionNotAllowed):
        services.version_activate(actor=checker, version=draft)


def test_activation_retires_the_previous_active_version(maker, checker):
    v1 = note_version(maker=maker, checker=checker, status=VersionStatus.ACTIVE, text="one")
    v2 = note_version(maker=maker, checker=checker, status=VersionStatus.APPROVED, text="two")
    services.version_activate(actor=checker, version=v2)
    v1.refresh_from_db()
    v2.refresh_from_db()
    assert (v1.status, v2.status) == (VersionStatus.RETIRED, VersionStatus.ACTIVE)
    retire = AuditEvent.objects.get(action="retire", version_number=v1.number)
    assert retire.comment == "replaced by version 2"
    assert audit_chain_verify().ok


def test_database_refuses_a_second_active_version(maker, checker):
    note_version(maker=maker, checker=checker, status=VersionStatus.ACTIVE, text="one")
    v2 = note_version(maker=maker, checker=checker, status=VersionStatus.APPROVED, text="two")
    with pytest.raises(IntegrityError), transaction.atomic():
        Version.objects.filter(pk=v2.pk).update(status=VersionStatus.ACTIVE)


def test_one_version_under_review_per_item(maker, checker):
    note_version(maker=maker, checker=checker, status=VersionStatus.SUBMITTED, text="one")
    second = services.version_create(
        actor=maker, kind="note", name="house-rules", content={"text": "two"}
    )
    with pytest.raises(Conflict) as busy:
        services.version_submit(actor=maker, version=second)
    assert busy.value.details == {"under_review": 1}


def test_retired_is_final(maker, checker):
    retired = note_version(maker=maker, checker=checker, status=VersionStatus.RETIRED)
    for move in ("activate", "approve", "submit", "retire"):
        with pytest.raises((TransitionNotAllowed, PermissionDenied)):
            services.version_move(actor=checker, version=retired, move=move)


def test_invalid_content_and_names_write_nothing(maker):
    events_before = AuditEvent.objects.count()
    with pytest.raises(ValidationFailed):
        services.version_create(actor=maker, kind="note", name="n", content={"txt": "x"})
    with pytest.raises(ValidationFailed) as bad_name:
        services.version_create(actor=maker, kind="note", name="Bad Name!", content={"text": "x"})
    assert "name" in bad_name.value.details
    with pytest.raises(ValidationFailed):
        services.version_create(actor=maker, kind="note", name="n", content={"text": float("nan")})
    assert not Item.objects.exists()
    assert AuditEvent.objects.count() == events_before


def test_user_and_key_management_is_audited_and_admin_only(maker, admin_user):
    with pytest.raises(PermissionDenied):
        services.api_key_create(actor=maker, user=maker)
    row, key = services.api_key_create(actor=admin_user, user=maker, name="ci")
    assert key.startswith(row.prefix + ".") and row.key_hash != key
    assert key not in str(list(AuditEvent.objects.values_list("details", flat=True)))
    services.api_key_revoke(actor=admin_user, key=row)
    actions = list(AuditEvent.objects.values_list("action", flat=True))
    assert actions[-2:] == ["api_key_create", "api_key_revoke"]


def test_user_create_refuses_weak_passwords_and_unknown_roles(db):
    with pytest.raises(ValidationFailed):
        services.user_create(actor=None, username="u", password="123", roles=["maker"])
    with pytest.raises(ValidationFailed):
        services.user_create(actor=None, username="u", password="a-long-passphrase", roles=["god"])


def test_content_larger_than_a_reviewer_can_read_is_refused(maker, settings):
    settings.VERSION_CONTENT_MAX_BYTES = 1000
    with pytest.raises(ValidationFailed) as refused:
        services.version_create(actor=maker, kind="note", name="big", content={"text": "x" * 990})
    assert refused.value.details == {"content": ["larger than 1,000 bytes"]}
    assert not Item.objects.filter(name="big").exists()
    # An edit is held to the same limit.
    draft = services.version_create(actor=maker, kind="note", name="big", content={"text": "x"})
    with pytest.raises(ValidationFailed):
        services.version_update(actor=maker, version=draft, content={"text": "x" * 990})
    draft.refresh_from_db()
    assert draft.content == {"text": "x"}
