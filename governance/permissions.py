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
    + [("auth", p) for p in ("view_user", "view_group")],
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
