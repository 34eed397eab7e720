"""Where apps built on governance add to the reviewer pages without governance knowing them.

Three extension points, registered in an app's ``AppConfig.ready`` like the kinds are:
navigation links (``decisions`` adds its decision lookup), dashboard panels
(``decisions`` adds the active deployments) and version-page panels (``decisions`` adds
the simulated impact). Each carries the roles that see it, checked
with ``governance.roles.has_role`` like every page.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.http import HttpRequest
from django.urls import reverse

from governance.kinds import kinds_all
from governance.lifecycle import AUDIT_READER_ROLES
from governance.roles import Role, has_role
from governance.ui_access import UI_ROLES


@dataclass(frozen=True)
class NavLink:
    label: str
    url_name: str
    roles: frozenset[str]
    order: int = 100


@dataclass(frozen=True)
class DashboardPanel:
    key: str
    title: str
    template: str
    """Rendered with the dashboard's context plus what ``context(request)`` returns."""
    context: Callable[[HttpRequest], dict[str, Any]]
    roles: frozenset[str]
    order: int = 100


@dataclass(frozen=True)
class VersionPanel:
    """A section of the version page (``decisions`` adds the simulated impact)."""

    key: str
    title: str
    template: str
    context: Callable[[HttpRequest, Any], dict[str, Any] | None]
    """The panel's context for ``(request, version)``, or None to leave it out."""
    roles: frozenset[str]
    order: int = 100


_LINKS: dict[str, NavLink] = {}
_PANELS: dict[str, DashboardPanel] = {}
_VERSION_PANELS: dict[str, VersionPanel] = {}


def register_nav_link(link: NavLink) -> None:
    _LINKS[link.url_name] = link


def register_dashboard_panel(panel: DashboardPanel) -> None:
    _PANELS[panel.key] = panel


def register_version_panel(panel: VersionPanel) -> None:
    _VERSION_PANELS[panel.key] = panel


def version_panels_for(request: HttpRequest, version: Any) -> list[dict[str, Any]]:
    """The registered version-page panels this user may see and that apply to ``version``."""
    out = []
    for p in sorted(_VERSION_PANELS.values(), key=lambda p: (p.order, p.key)):
        if not has_role(request.user, *p.roles):
            continue
        context = p.context(request, version)
        if context is not None:
            out.append({"key": p.key, "title": p.title, "template": p.template, **context})
    return out


def dashboard_panels_for(request: HttpRequest) -> list[dict[str, Any]]:
    """The registered panels ``request.user`` may see, each with its template and context."""
    panels = sorted(_PANELS.values(), key=lambda p: (p.order, p.key))
    return [
        {"title": p.title, "template": p.template, **p.context(request)}
        for p in panels
        if has_role(request.user, *p.roles)
    ]


def navigation(request: HttpRequest) -> dict[str, Any]:
    """Context processor: the links of the site's navigation this user may follow.

    ``current`` marks the link of the page being shown (``aria-current="page"``).
    """
    user = getattr(request, "user", None)
    if user is None or not has_role(user, *UI_ROLES):
        return {"nav_links": []}
    links: list[tuple[int, str, str, frozenset[str]]] = [
        (10, "Dashboard", reverse("ui:dashboard"), UI_ROLES),
        (20, "Reviews", reverse("ui:review-queue"), UI_ROLES),
    ]
    for i, kind in enumerate(kinds_all()):
        links.append(
            (
                30 + i,
                kind.plural[:1].upper() + kind.plural[1:],
                reverse("ui:registry", kwargs={"slug": kind.slug}),
                UI_ROLES,
            )
        )
    links.append((80, "Audit trail", reverse("ui:audit-trail"), AUDIT_READER_ROLES))
    links.append((100, "Admin", reverse("admin:index"), frozenset({Role.ADMIN})))
    for link in _LINKS.values():
        links.append((link.order, link.label, reverse(link.url_name), link.roles))
    path = request.path
    shown = []
    for _, label, url, roles in sorted(links, key=lambda entry: entry[0]):
        if not has_role(user, *roles):
            continue
        current = path == url if url == "/" else path.startswith(url)
        shown.append({"label": label, "url": url, "current": current})
    return {"nav_links": shown}
