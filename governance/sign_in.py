"""Sign-in protection (django-axes): who is signing in from where, and what a lockout says.

Failed sign-ins are counted per user name and client address; ``AXES_FAILURE_LIMIT`` of
them lock that pair out for ``AXES_COOLOFF_TIME``. Each lockout is logged at WARNING by
``governance.sign_in`` (user name and address, never the password tried).
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

logger = logging.getLogger(__name__)


def client_address(request: HttpRequest) -> str | None:
    """The client's address: ``REMOTE_ADDR``, or with ``CLIENT_ADDRESS_FROM_PROXY`` (behind
    the TLS proxy) the last address of ``X-Forwarded-For``, the one the proxy appended.
    Earlier addresses in that header come from the client and could be anything."""
    if settings.CLIENT_ADDRESS_FROM_PROXY:
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
        last = forwarded.rsplit(",", 1)[-1].strip()
        if last:
            return last
    return request.META.get("REMOTE_ADDR")


def lockout_response(
    request: HttpRequest, original_response: Any = None, credentials: Any = None
) -> HttpResponse:
    """The answer to a sign-in while its user and address are locked out: 429 and a page
    that says why, for how long, and who can lift it."""
    from axes.helpers import get_client_username

    minutes = max(1, round(settings.AXES_COOLOFF_TIME.total_seconds() / 60))
    return render(
        request,
        "registration/locked_out.html",
        {
            "username": get_client_username(request, credentials) or "",
            "failure_limit": settings.AXES_FAILURE_LIMIT,
            "minutes": minutes,
        },
        status=429,
    )


def _locked_out(
    sender: Any, request: HttpRequest, username: str, ip_address: str, **kwargs: Any
) -> None:
    logger.warning(
        "sign-in locked out for %s from %s after %s failed attempts",
        username,
        ip_address,
        settings.AXES_FAILURE_LIMIT,
    )


def connect_lockout_log() -> None:
    from axes.signals import user_locked_out

    user_locked_out.connect(_locked_out, dispatch_uid="governance-sign-in-lockout")
