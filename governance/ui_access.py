"""Who may open a reviewer page, checked with the same role helpers the services use.

Every page view is wrapped in ``ui_page``: anonymous people go to the login page; a
signed-in user without one of the page's roles gets a 403 page naming the roles needed;
a ``DomainError`` that reaches the wrapper (an unknown item, a refused read) is shown as
a page with the error's status and message, never as a 500. Writes are checked again by
the services they call: a page's roles only decide who sees it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import wraps
from typing import Any

from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from governance.exceptions import DomainError, NotFound, PermissionDenied
from governance.roles import Role, require_role, roles_of

# People. The api_client role belongs to downstream systems, which use the REST API.
UI_ROLES = frozenset({Role.MAKER, Role.CHECKER, Role.AUDITOR, Role.ADMIN})

View = Callable[..., HttpResponse]


def error_page(request: HttpRequest, exc: DomainError) -> HttpResponse:
    """A refusal or a missing thing as a page, with the error's own HTTP status."""
    if isinstance(exc, PermissionDenied):
        template, title = "governance/forbidden.html", "Not allowed"
    elif isinstance(exc, NotFound):
        template, title = "governance/not_found.html", "Not found"
    else:
        template, title = "governance/error.html", "Cannot do that"
    is_admin = getattr(request.user, "is_authenticated", False) and Role.ADMIN in roles_of(
        request.user
    )
    return render(
        request,
        template,
        {"error": exc, "title": title, "is_admin": is_admin},
        status=exc.status,
    )


def ui_page(*, roles: Iterable[str], action: str) -> Callable[[View], View]:
    """Let only people holding one of ``roles`` open the page; ``action`` words the refusal
    ("read the audit trail")."""
    wanted = frozenset(roles)

    def decorate(view: View) -> View:
        @wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            try:
                require_role(request.user, wanted, action=action)
                return view(request, *args, **kwargs)
            except DomainError as exc:
                return error_page(request, exc)

        return wrapper

    return decorate
