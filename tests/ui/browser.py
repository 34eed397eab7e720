"""Shared by the browser tests: Debian's Chromium driven by Playwright, and the helpers.

The fixtures (``browser``, ``page``, ``console_errors``) are in ``tests/ui/conftest.py``.
Without Chromium the tests fail rather than skip: CI installs it (.ci/run).
"""

from __future__ import annotations

import os
from pathlib import Path

from playwright.sync_api import Page, expect

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "browser-test-passphrase-42"
SHOTS = ROOT / "test-output" / "screenshots"
CHROMIUM = os.environ.get("ARBITER_CHROMIUM", "/usr/bin/chromium")
# Chromium's own calls home are refused on a closed network; keep it quiet and local.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def log_in(page: Page, base: str, username: str) -> None:
    page.goto(f"{base}/")
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    page.get_by_label("User name").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()


def log_out(page: Page) -> None:
    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()
