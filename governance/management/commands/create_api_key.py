"""manage.py create_api_key --user NAME [--name LABEL] [--days N]"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from governance.exceptions import DomainError
from governance.services import api_key_create


class Command(BaseCommand):
    help = "Issue an API key for a user; the key is printed once and only its hash is stored."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--user", required=True)
        parser.add_argument("--name", default="", help="what the key is for")
        parser.add_argument(
            "--days",
            type=int,
            default=None,
            help="days until the key expires (default API_KEY_DAYS, 365; 0: never)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        user = get_user_model().objects.filter(username=options["user"]).first()
        if user is None:
            raise CommandError(f"There is no user called {options['user']!r}.")
        try:
            row, key = api_key_create(
                actor=None, user=user, name=options["name"], days=options["days"]
            )
        except DomainError as exc:
            raise CommandError(exc.message) from None
        expiry = (
            f"expires {row.expires_at:%Y-%m-%d %H:%M} UTC" if row.expires_at else "never expires"
        )
        self.stderr.write(
            f"API key {row.prefix} for {user.username} ({expiry}); store it now, it is not "
            "shown again:"
        )
        self.stdout.write(key)
