"""Django model permissions that let people roles use the admin (read-only views).

They only open admin pages: what anybody may *do* is decided by the services
(``governance.roles.require_role`` and the lifecycle table), never by these.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import Group, Permission

from governance.roles import Role

_VIEW = ["view_item", "view_version", "view_auditevent", "view_chainhead"]
ROLE_PERMISSIONS: dict[str, list[tuple[str, str]]] = {
    Role.MAKER: [("governance", p) for p in _VIEW],
    Role.CHECKER: [("governance", p) for p in _VIEW],
    Role.AUDITOR: [("governance", p) for p in _VIEW],
    Role.ADMIN: [("governance", p) for p in [*_VIEW, "view_apikey"]]
    + [("auth", p) for p in ("view_user", "view_group")]
    # The schedules beat runs (the executive report's day and time: docs/operations.md):
    # an administrator changes them in the admin, picking or adding a crontab.
    + [
        ("django_celery_beat", p)
        for p in (
            "view_periodictask",
            "change_periodictask",
            "view_crontabschedule",
            "add_crontabschedule",
            "change_crontabschedule",
            "view_intervalschedule",
        )
    ]
    # Failed sign-ins and pauses (django-axes), to see who is paused; a pause is lifted
    # with axes_reset_username / axes_reset_ip.
    + [("axes", p) for p in ("view_accessattempt", "view_accessfailurelog")],
    Role.API_CLIENT: [],
}


def grant_role_permissions(**_: Any) -> None:
    for role, perms in ROLE_PERMISSIONS.items():
        group, _ = Group.objects.get_or_create(name=role)
        for app_label, codename in perms:
            permission = Permission.objects.filter(
                content_type__app_label=app_label, codename=codename
            ).first()
            if permission is not None:
                group.permissions.add(permission)
