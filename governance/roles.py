"""The roles people and systems hold, and the checks services make against them.

Roles are Django groups of the same name, created by migration ``0002_roles``.
Being a superuser grants no role: four eyes apply to everybody.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import models

from governance.exceptions import PermissionDenied


class Role(models.TextChoices):
    MAKER = "maker", "Maker (model developer, strategy analyst)"
    CHECKER = "checker", "Checker (compliance or risk reviewer)"
    AUDITOR = "auditor", "Auditor (read-only, verifies the trail)"
    API_CLIENT = "api_client", "API client (downstream system)"
    ADMIN = "admin", "Administrator (operates the platform)"


KEYLESS_ROLES = frozenset({Role.CHECKER.value, Role.ADMIN.value})
"""Roles an API key cannot carry. Approving and administering are a person's acts, signed
in with a password (and its lockout, idle timeout and password rules), not a long-lived
bearer string a script or a leaked file can present: a key is refused to anyone holding
one of these, and a key of someone who comes to hold one stops working."""


def the_roles(names: Iterable[str]) -> str:
    """``the checker role``, ``the checker and admin roles``: for messages."""
    names = sorted(names)
    return f"the {' and '.join(names)} role{'s' if len(names) > 1 else ''}"


def roles_of(user: AbstractBaseUser | AnonymousUser | None) -> frozenset[str]:
    """The role names ``user`` holds; none for anonymous or deactivated users."""
    if user is None or not user.is_authenticated or not user.is_active:
        return frozenset()
    cached = getattr(user, "_arbiter_roles", None)
    if cached is None:
        names = user.groups.filter(name__in=Role.values).values_list("name", flat=True)
        cached = frozenset(names)
        user._arbiter_roles = cached
    return cached


def forget_roles(user: AbstractBaseUser) -> None:
    """Drop the per-object role cache after the user's groups changed."""
    if hasattr(user, "_arbiter_roles"):
        del user._arbiter_roles


def has_role(user: AbstractBaseUser | AnonymousUser | None, *roles: str) -> bool:
    return bool(roles_of(user) & set(roles))


def require_role(
    user: AbstractBaseUser | AnonymousUser | None, roles: Iterable[str], *, action: str
) -> None:
    """Raise ``PermissionDenied`` unless ``user`` holds one of ``roles``."""
    wanted = sorted(roles)
    if not roles_of(user) & set(wanted):
        who = getattr(user, "username", "") or "anonymous"
        raise PermissionDenied(
            f"{who} may not {action}: it needs the role {' or '.join(wanted)}.",
            details={"required_roles": wanted},
        )
