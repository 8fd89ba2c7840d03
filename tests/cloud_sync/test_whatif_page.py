"""The fleet page's what-if form in headless Chromium (real uvicorn, real SQLite): log
in, pick a device with synced pump summaries, run a load scenario with a limit, see a
chart per channel and the crossing; a refused scenario shows the field; the page's
route refuses a caller without the session or the admin token."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from tests.browser import BrowserPage
from tests.cloud_sync.conftest import ADMIN_TOKEN, batch, live_server, post_batch
from tests.cloud_sync.test_whatif import _pump_summaries


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    """SQLite only (the API test covers both backends)."""
    return f"sqlite:///{tmp_path / 'cloud.db'}"


def test_the_fleet_page_runs_a_scenario(
    app: FastAPI, tokens: dict[str, str], web: BrowserPage
) -> None:
    with live_server(app) as base:
        with httpx.Client(base_url=base, timeout=30) as http:
            body = batch(1, alarms=[], summaries=_pump_summaries(20))
            assert post_batch(http, tokens["pump-2"], body).status_code == 200
            scenario = {"controls": {"load": [{"value": 0.5, "minutes": 10}]}}
            anonymous = http.post("/fleet/devices/pump-2/whatif", json=scenario)
            assert anonymous.status_code == 401 or anonymous.status_code == 403
        page = web.page
        page.goto(base + "/")
        page.fill("input[name=token]", ADMIN_TOKEN)
        page.click("button[type=submit]")
        page.wait_for_selector("#whatif-form")
        assert all("status of 401" in e for e in web.errors), web.errors
        web.errors.clear()
        page.select_option("#whatif-device", "pump-2")
        page.fill("#whatif-load", "1.0 20, 0.4 40")
        page.fill("#whatif-limit", "current >= 19")
        page.click("#whatif-form button")
        page.wait_for_selector("#whatif-charts [data-whatif='current'] svg polyline")
        answer = page.evaluate("() => window.fleetWhatIf.answer")
        assert answer["device"] == "pump-2" and answer["answer"]["steps"] == 60
        assert answer["answer"]["crossing"]["channel"] == "current"
        assert "current reaches 19" in (page.text_content("#whatif-result") or "")
        assert page.locator("#whatif-charts .chart").count() == 4
        page.fill("#whatif-load", "1.4 20")
        page.click("#whatif-form button")
        page.wait_for_function("() => document.getElementById('whatif-error').textContent")
        assert "controls.load.0.value" in (page.text_content("#whatif-error") or "")
        web.screenshot("fleet-whatif")
    assert [e for e in web.errors if "status of 422" not in e] == []
