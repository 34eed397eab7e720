"""Sign-in protection (django-axes): who is signing in from where, and what a lockout says.

Failed sign-ins are counted three ways within ``AXES_COOLOFF_TIME`` (LOGIN_LOCKOUT_MINUTES),
and reaching any limit pauses signing in until that time has passed without more failures
(429 and a page that says which pause it is, even for the right password):

- per user name and client address: ``AXES_FAILURE_LIMIT`` (LOGIN_FAILURE_LIMIT) pause
  that user from that address. Low, since it only stops the guesser.
- per user name, from all addresses together: ``LOGIN_ACCOUNT_FAILURE_LIMIT`` pause that
  user everywhere, so that guessing from many addresses (four tries from each of a
  thousand) gains little. Higher, since a stranger who knows a user name can pause the
  user by failing that many times.
- per client address, over all user names: ``LOGIN_ADDRESS_FAILURE_LIMIT`` pause every
  sign-in from that address, so that one password tried against many users (spraying)
  stops too. Higher again, since an office's people may share one address.

A success clears its own pair's count only. An administrator lifts a pause with
``axes_reset_username`` or ``axes_reset_ip``. Each pause is logged at WARNING by
``governance.sign_in`` (user name and address, never the password tried).
"""

from __future__ import annotations

import logging
from typing import Any

from axes.attempts import get_cool_off_threshold
from axes.handlers.database import AxesDatabaseHandler
from axes.helpers import get_client_username
from axes.models import AccessAttempt
from django.conf import settings
from django.db.models import Sum
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

logger = logging.getLogger(__name__)

PAUSED = "arbiter_sign_in_paused"
"""Set on a request refused by a wider count than its pair's: ``user`` or ``address``."""


def recent_failures(request: HttpRequest, **match: str) -> int:
    """Failed sign-ins matching ``match`` (``username`` or ``ip_address``) within the
    lockout time, over every row axes keeps (one per user, address and browser)."""
    total = AccessAttempt.objects.filter(
        attempt_time__gte=get_cool_off_threshold(request), **match
    ).aggregate(total=Sum("failures_since_start"))["total"]
    return total or 0


class SignInHandler(AxesDatabaseHandler):
    """django-axes's database handler with the user-wide and address-wide counts beside
    its per-pair one.

    axes compares one number, ``get_failures``, with one limit, both when a sign-in is
    tried (refused before the password is checked) and after it fails (the lockout). Here
    that number is the pair's count, raised to the pair limit when the user's failures
    from all addresses, or the address's failures for all users, reach their own limit.
    """

    def get_failures(self, request: HttpRequest, credentials: dict | None = None) -> int:
        failures = super().get_failures(request, credentials)
        if failures >= settings.AXES_FAILURE_LIMIT:
            return failures
        username = get_client_username(request, credentials)
        if username and (
            recent_failures(request, username=username) >= settings.LOGIN_ACCOUNT_FAILURE_LIMIT
        ):
            setattr(request, PAUSED, "user")
            return settings.AXES_FAILURE_LIMIT
        address = getattr(request, "axes_ip_address", None)
        if address and (
            recent_failures(request, ip_address=address) >= settings.LOGIN_ADDRESS_FAILURE_LIMIT
        ):
            setattr(request, PAUSED, "address")
            return settings.AXES_FAILURE_LIMIT
        return failures


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
    """The answer to a sign-in while it is paused: 429 and a page that says which pause,
    for how long, and who can lift it."""
    minutes = max(1, round(settings.AXES_COOLOFF_TIME.total_seconds() / 60))
    return render(
        request,
        "registration/locked_out.html",
        {
            "username": get_client_username(request, credentials) or "",
            "paused": getattr(request, PAUSED, "pair"),
            "address": getattr(request, "axes_ip_address", None) or "",
            "failure_limit": settings.AXES_FAILURE_LIMIT,
            "account_failure_limit": settings.LOGIN_ACCOUNT_FAILURE_LIMIT,
            "address_failure_limit": settings.LOGIN_ADDRESS_FAILURE_LIMIT,
            "minutes": minutes,
        },
        status=429,
    )


def _locked_out(
    sender: Any, request: HttpRequest, username: str, ip_address: str, **kwargs: Any
) -> None:
    paused = getattr(request, PAUSED, "pair")
    if paused == "user":
        logger.warning(
            "sign-in locked out for %s from every address after %s failed attempts from "
            "all addresses (the last from %s)",
            username,
            settings.LOGIN_ACCOUNT_FAILURE_LIMIT,
            ip_address,
        )
    elif paused == "address":
        logger.warning(
            "sign-in locked out for every user from %s after %s failed attempts for all "
            "users (the last as %s)",
            ip_address,
            settings.LOGIN_ADDRESS_FAILURE_LIMIT,
            username,
        )
    else:
        logger.warning(
            "sign-in locked out for %s from %s after %s failed attempts",
            username,
            ip_address,
            settings.AXES_FAILURE_LIMIT,
        )


def connect_lockout_log() -> None:
    from axes.signals import user_locked_out

    user_locked_out.connect(_locked_out, dispatch_uid="governance-sign-in-lockout")
