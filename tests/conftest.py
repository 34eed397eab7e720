"""Shared fixtures: one user per role, a generic test kind, and CI's no-skip rule."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import AbstractBaseUser
from hypothesis import settings as hypothesis_settings

from governance.exceptions import ValidationFailed
from governance.kinds import Kind, register_kind
from governance.roles import Role
from governance.services import user_create

PASSWORD = "correct-horse-battery-staple"


def _note_validate(content: dict[str, Any], *, artifact: Any = None) -> dict[str, Any]:
    """A minimal kind so governance is tested without any decisions content."""
    if set(content) != {"text"} or not isinstance(content["text"], str):
        raise ValidationFailed("a note is {'text': str}", details={"text": ["required"]})
    return content


register_kind(Kind(key="note", slug="notes", label="note", validate=_note_validate))

# CI runs the same examples every time, so a red build reproduces; locally they vary.
hypothesis_settings.register_profile("ci", derandomize=True, database=None, deadline=None)
if os.environ.get("CI"):
    hypothesis_settings.load_profile("ci")


# --- CI must not skip -------------------------------------------------------------
_skipped: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped:
        _skipped.append(report.nodeid)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if os.environ.get("ARBITER_FORBID_SKIPS") == "1" and _skipped:
        session.config.pluginmanager.get_plugin("terminalreporter").write_line(
            f"ARBITER_FORBID_SKIPS: {len(_skipped)} test(s) skipped; CI runs every test: "
            + ", ".join(_skipped[:10]),
            red=True,
        )
        session.exitstatus = 1


# --- people -------------------------------------------------------------------------
@pytest.fixture
def make_user(db: None) -> Callable[..., AbstractBaseUser]:
    def make(username: str, *roles: str) -> AbstractBaseUser:
        return user_create(actor=None, username=username, password=PASSWORD, roles=roles)

    return make


@pytest.fixture
def maker(make_user: Callable[..., AbstractBaseUser]) -> AbstractBaseUser:
    return make_user("mia-maker", Role.MAKER)


@pytest.fixture
def maker2(make_user: Callable[..., AbstractBaseUser]) -> AbstractBaseUser:
    return make_user("max-maker", Role.MAKER)


@pytest.fixture
def checker(make_user: Callable[..., AbstractBaseUser]) -> AbstractBaseUser:
    return make_user("chen-checker", Role.CHECKER)


@pytest.fixture
def checker2(make_user: Callable[..., AbstractBaseUser]) -> AbstractBaseUser:
    return make_user("cora-checker", Role.CHECKER)


@pytest.fixture
def auditor(make_user: Callable[..., AbstractBaseUser]) -> AbstractBaseUser:
    return make_user("ada-auditor", Role.AUDITOR)


@pytest.fixture
def admin_user(make_user: Callable[..., AbstractBaseUser]) -> AbstractBaseUser:
    return make_user("ola-admin", Role.ADMIN)


@pytest.fixture
def api_client_user(make_user: Callable[..., AbstractBaseUser]) -> AbstractBaseUser:
    return make_user("svc-lending", Role.API_CLIENT)


@pytest.fixture(autouse=True)
def _fresh_runtime_caches():
    """Each test builds its own registry, where names and numbers repeat across tests."""
    from decisions import runtime

    runtime.clear_caches()
    yield
    runtime.clear_caches()


@pytest.fixture(scope="session", autouse=True)
def _demo_models_trained_once():
    """The demo trains six models on simulated history (a few seconds); many tests load
    the demo. Deterministic for a seed, so the demo loader reuses one training per use
    case in this test session. The simulator's own tests call ``use_case`` directly and
    still train each time."""
    import copy
    import functools

    from decisions import demo_setup

    trained = functools.lru_cache(maxsize=None)(demo_setup.use_case)

    def use_case(name, *args, **kwargs):
        # A fresh copy of the content each time: callers may normalise what they are given.
        case = trained(name, *args, **kwargs)
        return copy.deepcopy(case)

    original = demo_setup.use_case
    demo_setup.use_case = use_case
    yield
    demo_setup.use_case = original
