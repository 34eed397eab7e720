"""manage.py replay_decision ID --user AUDITOR: recompute a logged decision and compare."""

from __future__ import annotations

import json
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from decisions.selectors import decision_get
from decisions.services import decision_replay
from governance.exceptions import DomainError


class Command(BaseCommand):
    help = "Replay a decision from its logged inputs and versions; exit 1 if it differs."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("decision_id")
        parser.add_argument("--user", required=True, help="an auditor, checker or admin")

    def handle(self, *args: Any, **options: Any) -> None:
        user = get_user_model().objects.filter(username=options["user"]).first()
        if user is None:
            raise CommandError(f"There is no user called {options['user']!r}.")
        try:
            decision = decision_get(actor=user, decision_id=options["decision_id"])
            replay = decision_replay(actor=user, decision=decision)
        except DomainError as exc:
            raise CommandError(exc.message) from None
        if replay.matches:
            self.stdout.write(
                self.style.SUCCESS(
                    f"Decision {decision.decision_id} replays identically: {decision.action_id}."
                )
            )
            return
        self.stderr.write(f"Decision {decision.decision_id} does NOT replay identically:")
        for difference in replay.differences:
            self.stderr.write(json.dumps(difference, default=str)[:2000])
        raise SystemExit(1)
