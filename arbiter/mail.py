"""Mail that is a courtesy, not the job: a failing mail server costs a warning, not the
work that wrote the message (a review, a log check)."""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.mail import EmailMessage

logger = logging.getLogger(__name__)


def mail_quietly(subject: str, body: str, to: list[str]) -> int:
    """Send one plain-text message to ``to``; returns how many it went to (0 when ``to``
    is empty or the mail server failed, which is logged at WARNING)."""
    if not to:
        return 0
    message = EmailMessage(subject, body, from_email=settings.DEFAULT_FROM_EMAIL, to=to)
    try:
        message.send()
    except Exception as exc:  # SMTP down, refused, timed out: nothing else is lost
        logger.warning("could not e-mail %r to %s: %s", subject, to, exc)
        return 0
    return len(to)
