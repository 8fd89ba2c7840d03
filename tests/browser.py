"""Headless Chromium (Debian's /usr/bin/chromium, driven by Playwright) for the page
tests: one browser per test module, a fresh context per test, and every console error
or uncaught exception on the page collected so a test can assert there were none.

Per module, not per session: Playwright's sync API keeps an asyncio loop running on the
main thread while it is open, and every later test calling asyncio.run() would fail."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO, require

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
SCREENSHOTS = REPO / "out" / "screenshots"
"""Screenshots of every page test, kept after the run to look at."""


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        require(False, "playwright is not installed (pip install -e '.[dev]')")
        raise
    require(
        Path(CHROMIUM).exists() or shutil.which(CHROMIUM) is not None,
        f"{CHROMIUM} missing (Debian: apt install chromium; make debian-packages)",
    )
    with sync_playwright() as p:
        # --no-sandbox: the tests run as root here, where Chromium's sandbox refuses.
        chromium = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        yield chromium
        chromium.close()


@dataclass
class BrowserPage:
    page: Any
    """playwright.sync_api.Page"""
    errors: list[str] = field(default_factory=list)
    """Console errors and uncaught exceptions, as text."""

    def screenshot(self, name: str) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        print(f"screenshot: {path}")
        return path


@pytest.fixture
def web(browser: Any) -> Iterator[BrowserPage]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(30_000)  # a guard: waits return as soon as the page is there
    found = BrowserPage(page)
    page.on(
        "console",
        lambda m: found.errors.append(f"console: {m.text}") if m.type == "error" else None,
    )
    page.on("pageerror", lambda e: found.errors.append(f"pageerror: {e}"))
    yield found
    context.close()
