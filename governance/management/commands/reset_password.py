"""manage.py reset_password NAME --password-stdin"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from governance.exceptions import DomainError
from governance.management.password_input import password_read_stdin
from governance.services import password_reset


class Command(BaseCommand):
    help = (
        "Set the password of someone who lost theirs: their sign-ins end, it is an audit "
        "event, and they are told by e-mail. They should change it at once on the pages."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument(
            "--password-stdin",
            action="store_true",
            help="read the new password from standard input (first line)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if not options["password_stdin"]:
            raise CommandError(
                "Give the password on standard input with --password-stdin "
                "(never on the command line, where other users can see it)."
            )
        user = get_user_model().objects.filter(username=options["username"]).first()
        if user is None:
            raise CommandError(f"There is no user called {options['username']!r}.")
        password = password_read_stdin()
        try:
            password_reset(actor=None, user=user, new_password=password)
        except DomainError as exc:
            raise CommandError(exc.message) from None
        self.stdout.write(
            self.style.SUCCESS(f"Reset the password of {user.username}; their sign-ins have ended.")
        )
