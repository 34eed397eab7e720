"""manage.py update_user NAME [--grant ROLE ...] [--revoke ROLE ...] [--email ADDRESS]
[--deactivate | --reactivate]"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from governance.exceptions import DomainError
from governance.roles import Role
from governance.services import (
    user_grant_roles,
    user_revoke_roles,
    user_set_active,
    user_set_email,
)


class Command(BaseCommand):
    help = (
        "Grant or revoke roles, change the e-mail address, deactivate or reactivate an "
        "account. Each change is an "
        "audit event; all of them happen, or none."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument(
            "--grant", action="append", default=[], choices=Role.values, help="repeatable"
        )
        parser.add_argument(
            "--revoke", action="append", default=[], choices=Role.values, help="repeatable"
        )
        parser.add_argument("--email", help="where the account's notices go ('' for none)")
        active = parser.add_mutually_exclusive_group()
        active.add_argument(
            "--deactivate",
            action="store_true",
            help="no more sign-ins or API calls; open sign-ins end; history stays",
        )
        active.add_argument("--reactivate", action="store_true")

    def handle(self, *args: Any, **options: Any) -> None:
        grant, revoke = set(options["grant"]), set(options["revoke"])
        email = options["email"]
        if not (
            grant or revoke or email is not None or options["deactivate"] or options["reactivate"]
        ):
            raise CommandError(
                "Say what to change: --grant, --revoke, --email, --deactivate or --reactivate."
            )
        if grant & revoke:
            raise CommandError(f"Both granted and revoked: {', '.join(sorted(grant & revoke))}.")
        user = get_user_model().objects.filter(username=options["username"]).first()
        if user is None:
            raise CommandError(f"There is no user called {options['username']!r}.")
        try:
            with transaction.atomic():
                if grant:
                    user_grant_roles(actor=None, user=user, roles=grant)
                if revoke:
                    user_revoke_roles(actor=None, user=user, roles=revoke)
                if email is not None:
                    user_set_email(actor=None, user=user, email=email)
                if options["deactivate"] or options["reactivate"]:
                    user_set_active(actor=None, user=user, active=options["reactivate"])
        except DomainError as exc:
            raise CommandError(exc.message) from None
        user.refresh_from_db()
        state = "active" if user.is_active else "deactivated"
        roles = ", ".join(sorted(user.groups.values_list("name", flat=True))) or "none"
        self.stdout.write(self.style.SUCCESS(f"{user.username}: {state}; roles {roles}."))
