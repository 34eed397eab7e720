"""Scheduled checks of governance (Celery beat runs them; see CELERY_BEAT_SCHEDULE)."""

from __future__ import annotations

import logging
from importlib import import_module
from typing import Any

from celery import shared_task
from django.conf import settings

from governance.audit import audit_chain_verify

logger = logging.getLogger(__name__)


@shared_task(name="governance.tasks.audit_chain_verify_task", acks_late=True)
def audit_chain_verify_task() -> dict[str, Any]:
    """Verify the audit chain daily; a broken chain is logged at ERROR for alerting.

    Reads only, so running it twice is harmless.
    """
    report = audit_chain_verify()
    if not report.ok:
        logger.error("audit chain verification failed: %s", "; ".join(report.problems))
    return {
        "ok": report.ok,
        "events": report.events,
        "head_seq": report.head_seq,
        "first_bad_event": report.first_bad_event,
        "problems": report.problems,
    }


@shared_task(name="governance.tasks.sessions_clear_task", acks_late=True)
def sessions_clear_task() -> dict[str, Any]:
    """Delete the sign-ins that have ended (``SESSION_IDLE_MINUTES``), as Django's
    ``clearsessions`` does: the server would refuse them anyway; this keeps the table small.
    """
    engine = import_module(settings.SESSION_ENGINE)
    engine.SessionStore.clear_expired()
    return {"cleared": True}


@shared_task(name="governance.tasks.review_notice_task", acks_late=True)
def review_notice_task(version_id: int, move: str) -> int:
    """E-mail the notice of a review move (``governance.notifications``)."""
    from governance.notifications import review_notice_send

    return review_notice_send(version_id, move)


@shared_task(name="governance.tasks.password_notice_task", acks_late=True)
def password_notice_task(user_id: int, at: str, address: str, reset: bool = False) -> int:
    """E-mail a person that their password was changed (``governance.notifications``)."""
    from governance.notifications import password_notice_send

    return password_notice_send(user_id, at, address, reset)
