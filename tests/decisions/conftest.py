from __future__ import annotations

import copy
from pathlib import Path

import pytest

from decisions.demo_portfolio import take_up_model, write_skops
from governance import services

_TRAINED: dict = {}


@pytest.fixture
def trained_model(tmp_path: Path) -> tuple[Path, dict]:
    """A real fitted pipeline as a skops file plus its content (trained once per session)."""
    if not _TRAINED:
        _TRAINED["model"] = take_up_model(rows=1500)
    estimator, content = _TRAINED["model"]
    return write_skops(estimator, tmp_path / "take-up.skops"), copy.deepcopy(content)


@pytest.fixture
def register_model(trained_model):
    def register(actor, name: str = "take-up", content: dict | None = None):
        path, default = trained_model
        with open(path, "rb") as handle:
            return services.version_create(
                actor=actor, kind="model", name=name, content=content or default, artifact=handle
            )

    return register


@pytest.fixture
def approved_model(register_model, maker, checker):
    version = register_model(maker)
    services.version_submit(actor=maker, version=version)
    return services.version_approve(actor=checker, version=version)
