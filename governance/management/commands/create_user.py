"""manage.py create_user NAME --role ROLE [--role ROLE] --password-stdin"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from governance.exceptions import DomainError
from governance.management.password_input import password_read_stdin
from governance.roles import Role
from governance.services import user_create


class Command(BaseCommand):
    help = "Create a person or system account with one or more roles."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument(
            "--role",
            action="append",
            required=True,
            choices=Role.values,
            help="a role to grant; repeat for several",
        )
        parser.add_argument(
            "--password-stdin",
            action="store_true",
            help="read the password from standard input (first line)",
        )
        parser.add_argument("--email", default="")

    def handle(self, *args: Any, **options: Any) -> None:
        if not options["password_stdin"]:
            raise CommandError(
                "Give the password on standard input with --password-stdin "
                "(never on the command line, where other users can see it)."
            )
        password = password_read_stdin()
        try:
            user = user_create(
                actor=None,
                username=options["username"],
                password=password,
                roles=options["role"],
                email=options["email"],
            )
        except DomainError as exc:
            raise CommandError(exc.message) from None
        self.stdout.write(
            self.style.SUCCESS(f"Created {user.username} with roles {', '.join(options['role'])}.")
        )
