"""E-mail about reviews: checkers hear that a version awaits them, its authors hear the verdict.

Sent after the move commits (``transaction.on_commit``), by a Celery task when a broker is
configured (so a slow mail server never holds up the page), in-process otherwise. Mail
is a courtesy: a mail server or broker that fails costs a WARNING in the log, never the
move, which is already committed and in the audit chain. People without an address, and
deactivated ones, get nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from arbiter.mail import mail_quietly
from governance.content_diff import content_changes
from governance.kinds import kind_get
from governance.lifecycle import Move
from governance.models import Version
from governance.roles import Role
from governance.selectors import four_eyes_conflict, version_diff_base

logger = logging.getLogger(__name__)

NOTIFIED_MOVES = (Move.SUBMIT, Move.APPROVE, Move.REJECT)
CHANGES_SHOWN = 15


def review_notice_on_commit(version: Version, move: Move) -> None:
    """Once the current transaction commits, send the notice of ``move`` on ``version``."""
    if move not in NOTIFIED_MOVES:
        return
    version_id, name = version.pk, move.value
    transaction.on_commit(lambda: _queue(version_id, name))


def _queue(version_id: int, move: str) -> None:
    from governance.tasks import review_notice_task

    try:
        review_notice_task.delay(version_id, move)
    except Exception as exc:  # the broker did not take it: the move stands regardless
        logger.warning("review notice %s of version %s not sent: %s", move, version_id, exc)


def review_notice_send(version_id: int, move: str) -> int:
    """Write the notice of ``move`` on version ``version_id``; returns how many people it
    went to (0 when nobody has an address or the mail server failed)."""
    version = (
        Version.objects.select_related("item", "author", "submitted_by", "reviewed_by")
        .filter(pk=version_id)
        .first()
    )
    if version is None:
        return 0
    people = _reviewers(version) if move == Move.SUBMIT else _people_behind(version)
    to = sorted({person.email for person in people})
    if not to:
        return 0  # nobody to write to: no diff worth computing
    subject, body = _submitted(version) if move == Move.SUBMIT else _reviewed(version, move)
    return mail_quietly(subject, body, to)


def _with_address(users: Iterable[AbstractBaseUser]) -> list[AbstractBaseUser]:
    return [user for user in users if user.is_active and user.email]


def _reviewers(version: Version) -> list[AbstractBaseUser]:
    """Checkers who may review it: four eyes rule out its authors and its submitter."""
    checkers = get_user_model().objects.filter(groups__name=Role.CHECKER).distinct()
    return [
        user
        for user in _with_address(checkers)
        if four_eyes_conflict(user=user, version=version) is None
    ]


def _people_behind(version: Version) -> list[AbstractBaseUser]:
    """Its author, contributors and submitter: the people waiting for the verdict."""
    people = [version.author, version.submitted_by, *version.contributors.all()]
    reviewer = version.reviewed_by_id
    return _with_address(p for p in people if p is not None and p.pk != reviewer)


def _label(version: Version) -> str:
    return f"{kind_get(version.item.kind).label} {version.item.name} v{version.number}"


def _link(version: Version) -> str:
    path = reverse(
        "ui:version-detail",
        kwargs={
            "slug": kind_get(version.item.kind).slug,
            "name": version.item.name,
            "number": version.number,
        },
    )
    return settings.SITE_URL.rstrip("/") + path


def _what_changed(version: Version) -> str:
    """The diff the version page opens with, as lines (the first ``CHANGES_SHOWN``)."""
    baseline = version_diff_base(version=version)
    if baseline is None:
        return "What changed: no earlier version of it was approved; nothing to compare.\n\n"
    base = baseline.version
    changes = content_changes(kind_get(version.item.kind), base.content, version.content)
    shown = "".join(f"- {change.text}\n" for change in changes[:CHANGES_SHOWN])
    more = len(changes) - CHANGES_SHOWN
    if more > 0:
        shown += f"- and {more} more on the page\n"
    also = f"Also in use: {baseline.also}.\n" if baseline.also else ""
    return f"What changed since v{base.number} ({baseline.why}):\n{also}{shown or '- nothing'}\n"


def _submitted(version: Version) -> tuple[str, str]:
    who = version.submitted_by.username if version.submitted_by else "someone"
    note = version.change_note or "(none)"
    return (
        f"[Arbiter] {_label(version)} awaits review",
        f"{who} submitted {_label(version)} for review.\n\n"
        f"Change note: {note}\n\n"
        f"{_what_changed(version)}"
        f"Review it: {_link(version)}\n\n"
        "You may review it: you did not write or submit it (four eyes). Another checker\n"
        "may get there first; the review queue shows what is still waiting.\n",
    )


def _reviewed(version: Version, move: str) -> tuple[str, str]:
    reviewer = version.reviewed_by.username if version.reviewed_by else "a checker"
    verdict = "approved" if move == Move.APPROVE else "rejected"
    after = (
        "A checker or an administrator can now activate it."
        if move == Move.APPROVE
        else "Its content stays as it was; draft a new version from it to answer the reason."
    )
    return (
        f"[Arbiter] {_label(version)} {verdict} by {reviewer}",
        f"{reviewer} {verdict} {_label(version)}.\n\n"
        f"Reason: {version.review_comment or '(none)'}\n\n"
        f"{after}\n\n{_link(version)}\n",
    )


# --- account notices ---------------------------------------------------------------


def password_notice_on_commit(
    user: AbstractBaseUser, *, address: str | None, reset: bool = False
) -> None:
    """Once the password change commits, tell its owner, so a change they did not make
    (a session left open, a stolen cookie) does not go unnoticed."""
    user_id, at = user.pk, timezone.now().strftime("%Y-%m-%d %H:%M:%S")
    transaction.on_commit(lambda: _queue_password_notice(user_id, at, address or "", reset))


def _queue_password_notice(user_id: int, at: str, address: str, reset: bool) -> None:
    from governance.tasks import password_notice_task

    try:
        password_notice_task.delay(user_id, at, address, reset)
    except Exception as exc:  # the broker did not take it: the change stands regardless
        logger.warning("password notice for user %s not sent: %s", user_id, exc)


def password_notice_send(user_id: int, at: str, address: str, reset: bool = False) -> int:
    """Write the notice of a password change; returns how many it went to (0 or 1)."""
    user = get_user_model().objects.filter(pk=user_id).first()
    if user is None or not _with_address([user]):
        return 0
    where = f" from {address}" if address else ""
    how = "was reset by an administrator" if reset else "was changed"
    then = (
        "Sign in with the password they gave you and change it at once (Change password,\n"
        "at the top of every page).\n\n"
        if reset
        else ""
    )
    return mail_quietly(
        f"[Arbiter] Your password {how}",
        f"The password of your Arbiter account {user.username} {how} at {at} UTC{where}.\n\n"
        f"{then}Your other sign-ins have ended; API keys are not affected.\n\n"
        "If you did not change it, tell Arbiter's administrators at once: they can\n"
        "deactivate the account and read the audit trail for what it did.\n\n"
        f"{settings.SITE_URL.rstrip('/')}{reverse('login')}\n",
        [user.email],
    )
