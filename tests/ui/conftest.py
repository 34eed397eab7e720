"""A small governed world for the reviewer pages: an active cross-sell deployment, a
strategy version waiting for review, and one logged decision, all built by the services."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.contrib.auth.models import AbstractBaseUser
from django.utils import timezone
from playwright.sync_api import Browser, Page, sync_playwright

from decisions.demo_portfolio import (
    cross_sell_constraints,
    cross_sell_strategy,
    synthetic_customers,
)
from decisions.models import Decision, OptimisationRun
from decisions.services import decision_make
from governance import services
from governance.models import Version
from governance.roles import Role
from tests.decisions import conftest as decisions_fixtures
from tests.ui.browser import CHROMIUM, CHROMIUM_ARGS

# The registry fixtures of the decisions tests, shared rather than copied.
trained_model = decisions_fixtures.trained_model
register_model = decisions_fixtures.register_model
approved_model = decisions_fixtures.approved_model
cross_sell_deployment = decisions_fixtures.cross_sell_deployment


# --- the browser (tests/ui/*_browser.py) -------------------------------------------------
@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"Chromium is not installed at {CHROMIUM}: apt-get install chromium chromium-driver "
            "(.ci/run does this). The browser tests never skip."
        )
    # Sync Playwright runs an event loop in this thread, so Django's ORM, called from the
    # test body alongside it, would refuse to run ("SynchronousOnlyOperation"). Nothing
    # here is async: the live server answers in its own thread.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            yield launched
            launched.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture
def console_errors(page: Page) -> list[str]:
    """What the browser reported as errors: a script that failed, a resource refused by
    the Content-Security-Policy ("Refused to ..."), a request answered 4xx or 5xx."""
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    return errors


def customer(i: int = 0) -> dict:
    row = synthetic_customers(20, seed=5).iloc[i]
    return {k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()}


@dataclass
class World:
    deployment: Version
    strategy_v1: Version
    strategy_v2: Version
    """Submitted by ``maker``: waits for a checker."""
    limits_draft: Version
    """A draft (v2) of the constraint set, written by ``maker``."""
    decision: Decision
    run: OptimisationRun
    """A succeeded optimisation run of the deployment, started by ``maker``."""


@pytest.fixture
def maker_checker(make_user) -> AbstractBaseUser:
    """A senior analyst holding both roles: only four eyes keep them from approving."""
    return make_user("sam-senior", Role.MAKER, Role.CHECKER)


@pytest.fixture
def world(cross_sell_deployment, maker, checker, api_client_user) -> World:
    strategy_v1 = Version.objects.get(item__kind="strategy", item__name="cross-sell", number=1)
    content = cross_sell_strategy(model_name="take-up", model_version=1, revision=2)
    strategy_v2 = services.version_create(
        actor=maker,
        kind="strategy",
        name="cross-sell",
        content=content,
        change_note="Add a premium card.",
    )
    strategy_v2 = services.version_submit(actor=maker, version=strategy_v2)
    limits_draft = services.version_create(
        actor=maker,
        kind="constraint_set",
        name="cross-sell-limits",
        content=cross_sell_constraints(strategy_name="cross-sell"),
        change_note="Same limits, to be tuned.",
    )
    decision = decision_make(
        actor=api_client_user, deployment="cross-sell", customer_id="C-1042", features=customer(0)
    ).decision
    limits = Version.objects.get(
        item__kind="constraint_set", item__name="cross-sell-limits", number=1
    )
    run = OptimisationRun.objects.create(
        created_by=maker,
        created_at=timezone.now(),
        deployment_name="cross-sell",
        deployment_version=cross_sell_deployment,
        strategy_version=strategy_v1,
        constraint_set_version=limits,
        population={
            "kind": "file",
            "name": "q3.csv",
            "format": "csv",
            "bytes": 1234,
            "sha256": "0" * 64,
            "path": "sha256/00/x.csv",
        },
        time_limit_seconds=600,
        status="succeeded",
        customers=2,
        objective=12.5,
        bound=12.5,
        gap=0.0,
        solver_status="optimal",
        limits=[
            {
                "name": "marketing_budget",
                "description": "Spend",
                "sense": "<=",
                "bound": 10.0,
                "used": 8.0,
                "slack": 2.0,
                "utilisation": 0.8,
                "price": 0.0,
                "binding": False,
            }
        ],
        prices={"marketing_budget": 0.0},
        kpis={
            "total": {"customers": 2, "mean": {"p_take_up": 0.2}},
            "per_action": [
                {
                    "action": "card",
                    "label": "Card <b>offer</b>",
                    "customers": 2,
                    "share": 1.0,
                    "value": 12.5,
                    "mean_value": 6.25,
                    "mean": {"p_take_up": 0.2},
                }
            ],
            "price_agreement": 1.0,
        },
        started_at=timezone.now(),
        finished_at=timezone.now(),
    )
    return World(cross_sell_deployment, strategy_v1, strategy_v2, limits_draft, decision, run)
