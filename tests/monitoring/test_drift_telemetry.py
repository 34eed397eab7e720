"""Evidently's usage telemetry is off in every process that loads the settings, and building
a drift report makes no network call at all."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from decisions.demo_portfolio import SCHEMA, synthetic_customers
from monitoring.drift import drift_compare

ROOT = Path(__file__).resolve().parents[2]


def test_the_settings_opt_out_of_evidently_telemetry():
    from evidently.telemetry import DO_NOT_TRACK_ENV, event_logger

    assert DO_NOT_TRACK_ENV == "DO_NOT_TRACK"  # Evidently's own name for its opt-out
    assert os.environ.get("DO_NOT_TRACK") == "1"
    assert event_logger.is_enabled() is False


@pytest.mark.parametrize("settings_module", ["arbiter.settings.local", "arbiter.settings.test"])
def test_every_process_that_loads_the_settings_opts_out(settings_module):
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DO_NOT_TRACK", "EVIDENTLY_DISABLE_TELEMETRY"}
    }
    env["DJANGO_SETTINGS_MODULE"] = settings_module
    code = (
        "import django, os; django.setup();"
        "from evidently.telemetry import event_logger;"
        "print(os.environ.get('DO_NOT_TRACK'), event_logger.is_enabled())"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split()[-2:] == ["1", "False"]


@pytest.fixture
def no_network(monkeypatch):
    """Fail any attempt to open a connection or resolve a name; record who tried."""
    attempts: list[str] = []

    def refuse(*args, **kwargs):
        attempts.append(repr(args[:2]))
        raise AssertionError(f"network call attempted: {args[:2]!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    return attempts


def test_building_a_report_makes_no_network_call(no_network):
    from evidently.telemetry import event_logger

    reference = synthetic_customers(300, seed=1)
    current = synthetic_customers(200, seed=2)
    current["income"] = current["income"] * 2
    rng = np.random.default_rng(3)
    comparison = drift_compare(
        schema=SCHEMA,
        reference=reference,
        current=current,
        reference_scores=rng.random(300),
        current_scores=rng.random(200),
        title="telemetry check",
    )
    event_logger.send_event("python", "report")  # what Evidently's UI would send: nothing
    assert no_network == []
    assert comparison.html and {f["name"]: f for f in comparison.features}["income"]["drifted"]
