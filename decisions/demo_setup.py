"""The demo's users and governed content, built through the real services.

Idempotent: running it again resets the demo passwords and adds nothing twice.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from django.contrib.auth import get_user_model
from django.db import transaction

from decisions.demo_portfolio import (
    cross_sell_constraints,
    cross_sell_strategy,
    take_up_model,
    write_skops,
)
from governance import services
from governance.models import Item
from governance.roles import Role

DEMO_PASSWORD = "arbiter-demo-2026"  # noqa: S105 - printed to the person running the demo
DEMO_USERS = {
    "maker": [Role.MAKER],
    "checker": [Role.CHECKER],
    "auditor": [Role.AUDITOR],
    "admin": [Role.ADMIN],
}
MODEL, STRATEGY, LIMITS = "take-up", "cross-sell", "cross-sell-limits"


@dataclass(frozen=True)
class DemoReport:
    users: dict[str, list[str]]
    password: str
    created_content: bool


def demo_load() -> DemoReport:
    """Create the demo users and content unless they exist; return what to tell the user."""
    User = get_user_model()
    people = {}
    for username, roles in DEMO_USERS.items():
        user = User.objects.filter(username=username).first()
        if user is None:
            user = services.user_create(
                actor=None, username=username, password=DEMO_PASSWORD, roles=roles
            )
        else:
            user.set_password(DEMO_PASSWORD)
            user.save(update_fields=["password"])
        people[username] = user

    if Item.objects.filter(kind="model", name=MODEL).exists():
        return DemoReport(users=DEMO_USERS, password=DEMO_PASSWORD, created_content=False)

    maker, checker = people["maker"], people["checker"]
    estimator, model_content = take_up_model()
    with tempfile.TemporaryDirectory() as scratch, transaction.atomic():
        path = write_skops(estimator, Path(scratch) / "take-up.skops")
        with open(path, "rb") as artifact:
            model = services.version_create(
                actor=maker,
                kind="model",
                name=MODEL,
                content=model_content,
                artifact=artifact,
                change_note="Logistic take-up model trained on 2025 cross-sell history.",
            )
        _approve_and_activate(model, maker=maker, checker=checker)

        strategy = services.version_create(
            actor=maker,
            kind="strategy",
            name=STRATEGY,
            content=cross_sell_strategy(model_name=MODEL, model_version=model.number),
            change_note="Card or loan by expected margin, within affordability.",
        )
        _approve_and_activate(strategy, maker=maker, checker=checker)

        limits = services.version_create(
            actor=maker,
            kind="constraint_set",
            name=LIMITS,
            content=cross_sell_constraints(strategy_name=STRATEGY),
            change_note="Quarterly marketing budget and exposure cap.",
        )
        _approve_and_activate(limits, maker=maker, checker=checker)

        candidate = services.version_create(
            actor=maker,
            kind="strategy",
            name=STRATEGY,
            content=cross_sell_strategy(model_name=MODEL, model_version=model.number, revision=2),
            change_note="Adds a premium card for high-income customers.",
        )
        services.version_submit(actor=maker, version=candidate)
    return DemoReport(users=DEMO_USERS, password=DEMO_PASSWORD, created_content=True)


def _approve_and_activate(version, *, maker, checker) -> None:
    version = services.version_submit(actor=maker, version=version)
    version = services.version_approve(actor=checker, version=version, comment="Demo approval.")
    services.version_activate(actor=checker, version=version)
