"""manage.py register_model NAME --artifact FILE.skops --content FILE.json --user MAKER [--submit]

The same path as the REST upload: one service call, the same checks, the same audit event.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from arbiter.parsers import json_loads
from governance.exceptions import DomainError
from governance.services import version_create, version_submit


class Command(BaseCommand):
    help = "Register a scikit-learn model (skops file + JSON content) as a draft model version."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", help="the model's registry name, e.g. take-up")
        parser.add_argument("--artifact", required=True, type=Path, help="the .skops file")
        parser.add_argument(
            "--content",
            required=True,
            type=Path,
            help="JSON: schema, output, metrics, training_data, reference_sample, reason_codes",
        )
        parser.add_argument("--user", required=True, help="the maker registering it")
        parser.add_argument("--note", default="", help="change note")
        parser.add_argument("--submit", action="store_true", help="submit it for review too")

    def handle(self, *args: Any, **options: Any) -> None:
        user = get_user_model().objects.filter(username=options["user"]).first()
        if user is None:
            raise CommandError(f"There is no user called {options['user']!r}.")
        try:
            content = json_loads(options["content"].read_text())
        except (OSError, ValueError) as exc:
            raise CommandError(f"Cannot read the content file: {exc}") from None
        try:
            # One transaction: a refused --submit (another version under review, ...) must
            # not leave behind the draft it was asked to submit.
            with transaction.atomic(), open(options["artifact"], "rb") as artifact:
                version = version_create(
                    actor=user,
                    kind="model",
                    name=options["name"],
                    content=content,
                    artifact=artifact,
                    change_note=options["note"],
                )
                if options["submit"]:
                    version = version_submit(actor=user, version=version)
        except OSError as exc:
            raise CommandError(f"Cannot read the artifact: {exc}") from None
        except DomainError as exc:
            problems = "".join(f"\n  {field}: {text}" for field, text in exc.field_problems())
            raise CommandError(f"{exc.message}{problems}") from None
        self.stdout.write(
            self.style.SUCCESS(
                f"Registered model {options['name']} v{version.number} ({version.status}), "
                f"SHA-256 {version.content_hash}."
            )
        )
