"""Review notices: checkers who may review a submitted version hear of it; its authors hear
the verdict. Mail is sent after the move commits and never costs the move."""

from __future__ import annotations

import logging
from smtplib import SMTPException

import pytest
from django.core import mail
from django.db import transaction
from kombu.exceptions import OperationalError

from governance import services
from governance.models import Version, VersionStatus
from governance.roles import Role
from tests.governance.factories import note_version

pytestmark = pytest.mark.django_db


@pytest.fixture
def people(make_user, maker, checker, checker2):
    for user, address in ((maker, "mia@bank.example"), (checker, "cy@bank.example")):
        user.email = address
        user.save(update_fields=["email"])
    checker2.email = "cleo@bank.example"
    checker2.save(update_fields=["email"])
    make_user("nadia-checker", Role.CHECKER)  # no address: gets nothing
    gone = make_user("gus-checker", Role.CHECKER)
    gone.email, gone.is_active = "gus@bank.example", False
    gone.save(update_fields=["email", "is_active"])
    auditor = make_user("ann-auditor", Role.AUDITOR)
    auditor.email = "ann@bank.example"
    auditor.save(update_fields=["email"])
    return maker, checker, checker2


def submitted(maker, django_capture_on_commit_callbacks) -> Version:
    draft = services.version_create(
        actor=maker,
        kind="note",
        name="house-rules",
        content={"text": "be kinder"},
        change_note="Kinder, as the board asked.",
    )
    with django_capture_on_commit_callbacks(execute=True):
        return services.version_submit(actor=maker, version=draft)


def test_a_submitted_version_is_announced_to_the_checkers_who_may_review_it(
    people, django_capture_on_commit_callbacks
):
    maker, _, _ = people
    submitted(maker, django_capture_on_commit_callbacks)
    assert len(mail.outbox) == 1
    notice = mail.outbox[0]
    # Active checkers with an address; not the author, the auditor or the deactivated one.
    assert sorted(notice.to) == ["cleo@bank.example", "cy@bank.example"]
    assert notice.subject == "[Arbiter] note house-rules v1 awaits review"
    assert f"{maker.username} submitted note house-rules v1 for review." in notice.body
    assert "Change note: Kinder, as the board asked." in notice.body
    assert "What changed: no earlier version of it was approved" in notice.body
    assert "Review it: /registry/notes/house-rules/v1/" in notice.body


def test_the_notice_says_what_changed_since_the_active_version(
    people, django_capture_on_commit_callbacks
):
    maker, checker, _ = people
    note_version(maker=maker, checker=checker, status=VersionStatus.ACTIVE, text="be kind")
    mail.outbox.clear()
    version = submitted(maker, django_capture_on_commit_callbacks)
    assert version.number == 2
    assert (
        "What changed since v1 (the active version):\n"
        '- text changed from "be kind" to "be kinder"\n' in mail.outbox[0].body
    )


def test_a_maker_who_is_also_a_checker_is_not_asked_to_review_their_own_work(
    people, make_user, django_capture_on_commit_callbacks
):
    both = make_user("bo-both", Role.MAKER, Role.CHECKER)
    both.email = "bo@bank.example"
    both.save(update_fields=["email"])
    submitted(both, django_capture_on_commit_callbacks)
    assert "bo@bank.example" not in mail.outbox[0].to


def test_links_are_whole_when_the_site_address_is_set(
    people, settings, django_capture_on_commit_callbacks
):
    settings.SITE_URL = "https://arbiter.bank.example/"
    submitted(people[0], django_capture_on_commit_callbacks)
    assert "Review it: https://arbiter.bank.example/registry/notes/house-rules/v1/" in (
        mail.outbox[0].body
    )


@pytest.mark.parametrize(
    ("move", "reason", "verdict", "next_step"),
    [
        ("approve", "Reads well.", "approved", "can now activate it"),
        ("reject", "Too vague.", "rejected", "draft a new version from it"),
    ],
)
def test_the_verdict_goes_to_the_people_behind_the_version(
    people, django_capture_on_commit_callbacks, move, reason, verdict, next_step
):
    maker, checker, _ = people
    version = submitted(maker, django_capture_on_commit_callbacks)
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        services.version_move(actor=checker, version=version, move=move, comment=reason)
    assert len(mail.outbox) == 1
    notice = mail.outbox[0]
    assert notice.to == ["mia@bank.example"]  # the author and submitter, not the reviewer
    assert notice.subject == f"[Arbiter] note house-rules v1 {verdict} by {checker.username}"
    assert f"Reason: {reason}" in notice.body
    assert next_step in notice.body


def test_activation_and_drafts_send_nothing(people, django_capture_on_commit_callbacks):
    maker, checker, _ = people
    with django_capture_on_commit_callbacks(execute=True):
        note_version(maker=maker, checker=checker, status=VersionStatus.APPROVED, name="other")
    mail.outbox.clear()
    version = Version.objects.get(item__name="other")
    with django_capture_on_commit_callbacks(execute=True):
        services.version_activate(actor=checker, version=version)
        services.version_create(actor=maker, kind="note", name="other", content={"text": "x"})
    assert mail.outbox == []


def test_a_move_rolled_back_announces_nothing(people, django_capture_on_commit_callbacks):
    maker = people[0]
    draft = services.version_create(actor=maker, kind="note", name="n", content={"text": "a"})
    with (
        django_capture_on_commit_callbacks(execute=True) as callbacks,
        pytest.raises(RuntimeError),
        transaction.atomic(),
    ):
        services.version_submit(actor=maker, version=draft)
        raise RuntimeError("the caller's transaction failed after the move")
    assert callbacks == [] and mail.outbox == []
    draft.refresh_from_db()
    assert draft.status == VersionStatus.DRAFT


def test_a_failing_mail_server_costs_a_warning_not_the_move(
    people, monkeypatch, caplog, django_capture_on_commit_callbacks
):
    def refuse(self, messages):
        raise SMTPException("relay refused")

    monkeypatch.setattr("django.core.mail.backends.locmem.EmailBackend.send_messages", refuse)
    with caplog.at_level(logging.WARNING, logger="arbiter.mail"):
        version = submitted(people[0], django_capture_on_commit_callbacks)
    assert Version.objects.get(pk=version.pk).status == VersionStatus.SUBMITTED
    assert "relay refused" in caplog.text


def test_a_broker_that_is_down_costs_a_warning_not_the_move(
    people, monkeypatch, caplog, django_capture_on_commit_callbacks
):
    def down(*args, **kwargs):
        raise OperationalError("Error 111 connecting to redis:6379. Connection refused.")

    monkeypatch.setattr("governance.tasks.review_notice_task.delay", down)
    with caplog.at_level(logging.WARNING, logger="governance.notifications"):
        version = submitted(people[0], django_capture_on_commit_callbacks)
    assert Version.objects.get(pk=version.pk).status == VersionStatus.SUBMITTED
    assert "Connection refused" in caplog.text
    assert mail.outbox == []
