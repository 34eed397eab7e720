"""The demo's users and governed content, built through the real services.

Three use cases from the simulator (collections, onboarding, cross-sell): their models,
strategies and constraint sets approved and active, and an active deployment for each,
plus one strategy version submitted by ``maker`` that awaits review. Idempotent: running
it again resets the demo passwords and adds nothing twice.

Apps built on decisions add demo data of their own (``monitoring``: decisions and their
outcomes) as a demo step: a ``demo_step`` dotted path on their ``AppConfig``, which
``manage.py demo`` runs after ``demo_load`` (``demo_steps_run``).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.apps import apps
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils.module_loading import import_string

from decisions.demo_portfolio import write_skops
from decisions.simulator.use_cases import USE_CASES, use_case
from governance import services
from governance.models import Item, Version
from governance.roles import Role

DEMO_PASSWORD = "arbiter-demo-2026"  # noqa: S105 - printed to the person running the demo
DEMO_USERS = {
    "maker": [Role.MAKER],
    "checker": [Role.CHECKER],
    "auditor": [Role.AUDITOR],
    "admin": [Role.ADMIN],
    "lending-app": [Role.API_CLIENT],
}
CANDIDATE = "cross-sell"

DemoStep = Callable[[dict[str, AbstractBaseUser]], list[str]]
"""``step(demo users by name) -> sentences to print``; idempotent like ``demo_load``."""


def demo_steps_run() -> list[str]:
    """Run the ``demo_step`` of every installed app that has one, in INSTALLED_APPS order;
    return what they report."""
    User = get_user_model()
    people = {user.username: user for user in User.objects.filter(username__in=DEMO_USERS)}
    notes: list[str] = []
    for config in apps.get_app_configs():
        path = getattr(config, "demo_step", None)
        if path:
            step: DemoStep = import_string(path)
            notes.extend(step(people))
    return notes


@dataclass(frozen=True)
class DemoReport:
    users: dict[str, list[str]]
    password: str
    created_content: bool
    deployments: list[str]


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

    if Item.objects.filter(kind="deployment").exists():
        return DemoReport(DEMO_USERS, DEMO_PASSWORD, False, list(USE_CASES))

    maker, checker = people["maker"], people["checker"]
    with transaction.atomic():
        for name in USE_CASES:
            _load_use_case(name, maker=maker, checker=checker)
    return DemoReport(DEMO_USERS, DEMO_PASSWORD, True, list(USE_CASES))


def _load_use_case(name: str, *, maker: AbstractBaseUser, checker: AbstractBaseUser) -> None:
    case = use_case(name)
    versions: dict[str, int] = {}
    with tempfile.TemporaryDirectory() as scratch:
        for model_name, (estimator, content) in case.models.items():
            path = write_skops(estimator, Path(scratch) / f"{model_name}.skops")
            with open(path, "rb") as artifact:
                model = services.version_create(
                    actor=maker,
                    kind="model",
                    name=model_name,
                    content=content,
                    artifact=artifact,
                    change_note=f"Trained on simulated {name} history.",
                )
            versions[model_name] = _go_live(model, maker=maker, checker=checker).number

    strategy_content = case.strategy(versions)
    strategy = _go_live(
        services.version_create(
            actor=maker,
            kind="strategy",
            name=name,
            content=strategy_content,
            change_note=case.description,
        ),
        maker=maker,
        checker=checker,
    )
    limits = _go_live(
        services.version_create(
            actor=maker,
            kind="constraint_set",
            name=f"{name}-limits",
            content=case.constraints(name),
            change_note="Portfolio limits for 5,000 customers a cycle.",
        ),
        maker=maker,
        checker=checker,
    )
    _go_live(
        services.version_create(
            actor=maker,
            kind="deployment",
            name=name,
            content={
                "description": f"The {name} channel.",
                "strategy": {"name": name, "version": strategy.number},
                "constraint_set": {"name": limits.item.name, "version": limits.number},
                "prices": {},
                "price_source": "none: zero until an optimisation run publishes prices",
                "salt": f"{name}-2026",
            },
        ),
        maker=maker,
        checker=checker,
    )
    if name == CANDIDATE:
        candidate = services.version_create(
            actor=maker,
            kind="strategy",
            name=name,
            content=_candidate(strategy_content),
            change_note="Raise the ability-to-pay bar and stop offering overdrafts.",
        )
        services.version_submit(actor=maker, version=candidate)


def _candidate(content: dict[str, Any]) -> dict[str, Any]:
    """The change awaiting review: a stricter affordability rule, one product fewer."""
    changed = {**content, "actions": [a for a in content["actions"] if a["id"] != "overdraft"]}
    changed["eligibility"] = [
        {
            **rule,
            "rule": rule["rule"].replace("0.3 * income", "0.25 * income"),
            "description": rule["description"].replace("30% of income", "25% of income"),
        }
        for rule in content["eligibility"]
    ]
    return changed


def _go_live(version: Version, *, maker: AbstractBaseUser, checker: AbstractBaseUser) -> Version:
    version = services.version_submit(actor=maker, version=version)
    version = services.version_approve(actor=checker, version=version, comment="Demo approval.")
    return services.version_activate(actor=checker, version=version)
