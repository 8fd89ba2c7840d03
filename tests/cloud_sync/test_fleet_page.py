"""The fleet page in headless Chromium: real uvicorn on 127.0.0.1, real SQLite. Log in
with the admin token through the form, then see the devices with their twins, models
and charts, a release's rollout state and the open alarms; the page refreshes itself in
place; an empty fleet shows what to do. No console errors. Screenshots in out/."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI
from sqlalchemy import Engine

from cloud_sync.releases.publish import publish_release
from cloud_sync.releases.store import BundleStore
from edge_agent.twin.shipped import DEFAULT_TWIN_BUNDLE
from tests.browser import BrowserPage
from tests.cloud_sync.conftest import (
    ADMIN_TOKEN,
    alarm_event,
    batch,
    live_server,
    post_batch,
    reported,
    summary,
)
from tests.conftest import BundleFactory


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    """SQLite only: the page renders the same rows on either backend (test_fleet.py
    covers both), and a browser per backend would only double the time."""
    return f"sqlite:///{tmp_path / 'cloud.db'}"


def _login(web: BrowserPage, base: str) -> Any:
    page = web.page
    page.goto(base + "/")
    page.fill("input[name=token]", ADMIN_TOKEN)
    page.click("button[type=submit]")
    page.wait_for_selector("h1:has-text('Fleet')")
    # The login form comes with status 401 by design (docs/cloud.md), which Chromium
    # logs as a failed load of the document: that one, and nothing else, is expected.
    assert all("status of 401" in e for e in web.errors), web.errors
    web.errors.clear()
    # Logged in (the form redirects to /); again with a short refresh period.
    page.goto(base + "/?poll_ms=200")
    page.wait_for_selector("h1:has-text('Fleet')")
    return page


def test_fleet_page_with_devices_release_and_alarms(
    app: FastAPI,
    engine: Engine,
    tokens: dict[str, str],
    client: httpx.Client,
    make_bundle: BundleFactory,
    release_key: Ed25519PrivateKey,
    tmp_path: Path,
    web: BrowserPage,
) -> None:
    start = time.time() - 3600
    body = batch(
        1,
        summaries=[summary(start=start + 60 * i, mean=float(i % 9)) for i in range(40)],
        alarms=[alarm_event(1), alarm_event(2, kind="acknowledged")],
        reported=reported(
            1,
            model={"name": "edgetwin-generic-forecaster", "version": "1.0.0", "sha256": "ab" * 32},
            twin={"name": "edgetwin-pump-twin", "version": "1.0.0", "sha256": "cd" * 32},
            twin_update={
                "state": "rolled_back",
                "version": "0.9.0",
                "reason": "live guard: MAE 0.9 > 0.3",
                "bad_versions": {"0.9.0": "live guard: MAE 0.9 > 0.3"},
            },
            channels={
                "pressure": {
                    "health": [],
                    "horizon_s": [60.0, 120.0, 240.0, 480.0, 960.0],
                    "model_period_s": 60.0,
                }
            },
        ),
    )
    assert post_batch(client, tokens["pump-1"], body).status_code == 200

    def edit(data: dict[str, Any]) -> None:
        data["model"]["version"] = "1.1.0"

    store = BundleStore(tmp_path / "bundles", release_key.public_key())
    release = publish_release(
        engine, store, make_bundle(edit_manifest=edit), version="1.1.0", device="pump-1"
    )
    twin_release = publish_release(
        engine,
        store,
        DEFAULT_TWIN_BUNDLE,
        version="1.1.0",
        device="pump-1",
        private_key=release_key,
    )

    with live_server(app) as base:
        page = _login(web, base)
        assert page.locator("#devices tr[data-device]").count() == 2
        pump1 = page.locator("tr[data-device='pump-1']")
        assert "1.0.0 / 1.1.0" in pump1.locator("td.model").inner_text()  # the update pending
        # Horizons in time, from the model period the device reports.
        assert "forecasts up to 16 min (60 s period)" in pump1.locator("td.model").inner_text()
        # The twin beside the model: in service / asked for, and its last update's outcome.
        twin_cell = pump1.locator("td.twin-model").inner_text()
        assert "1.0.0 / 1.1.0" in twin_cell
        assert "rolled back 0.9.0: live guard: MAE 0.9 > 0.3" in twin_cell
        assert "update pending" in twin_cell  # 1.1.0 asked for, not reported on yet
        # Inside its row, measured in one step (the page refreshes itself in place).
        is_inside = pump1.locator("td.twin-model").evaluate(
            """(td) => {
                const c = td.getBoundingClientRect();
                const r = td.parentElement.getBoundingClientRect();
                return c.width > 0 && c.left >= r.left && c.right <= r.right
                    && c.top >= r.top && c.bottom <= r.bottom;
            }"""
        )
        assert is_inside
        points = pump1.locator("svg polyline").first.get_attribute("points") or ""
        assert len(points.split()) == 40
        pump2 = page.locator("tr[data-device='pump-2']")
        assert "unknown" in pump2.inner_text() and "no summaries yet" in pump2.inner_text()

        row = page.locator(f"#releases tr[data-release='{release.id}']")
        assert row.locator(".rollout-state").inner_text().strip() == release.state.value
        assert "offered 1" in row.inner_text() and "1.1.0" in row.inner_text()
        assert row.locator("td.kind").inner_text() == "model"
        twin_row = page.locator(f"#releases tr[data-release='{twin_release.id}']")
        assert twin_row.locator("td.kind").inner_text() == "twin"
        assert "edgetwin-pump-twin" in twin_row.inner_text()

        alarms = page.locator("#alarms tr[data-alarm]")
        assert alarms.count() == 2
        assert "pressure above 9 bar" in alarms.first.inner_text()

        # It refreshes in place, still logged in by its cookie.
        page.wait_for_function("() => window.fleetPage.updates >= 2")
        assert page.locator("#fleet-banner").is_hidden()
        web.screenshot("fleet-page")
    assert web.errors == []


def test_empty_fleet_says_what_to_do(app: FastAPI, web: BrowserPage) -> None:
    with live_server(app) as base:
        page = _login(web, base)
        assert "cloud-sync devices add" in page.inner_text("#no-devices")
        assert "No releases yet" in page.inner_text("#no-releases")
        assert page.inner_text("#no-alarms") == "No open alarms."
        page.wait_for_function("() => window.fleetPage.updates >= 1")
        web.screenshot("fleet-page-empty")
    assert web.errors == []


def test_lost_session_and_unreachable_server_show_a_banner(app: FastAPI, web: BrowserPage) -> None:
    with live_server(app) as base:
        page = _login(web, base)
        page.route("**/?poll_ms=200", lambda route: route.abort())
        banner = page.locator("#fleet-banner")
        banner.filter(has_text="Cannot reach cloud-sync").wait_for()
        page.unroute("**/?poll_ms=200")
        banner.wait_for(state="hidden")
        page.context.clear_cookies()
        banner.filter(has_text="session has ended").wait_for()
        assert page.locator("h1:has-text('Fleet')").is_visible()  # the last view stays
    assert not [e for e in web.errors if "pageerror" in e]
