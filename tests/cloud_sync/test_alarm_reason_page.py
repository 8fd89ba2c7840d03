"""The fleet page in headless Chromium shows an open alarm's reason: what tripped it,
the top channel, the score's parts and the window with the forecast and the limit, as
the device sent them in a batch (real uvicorn on 127.0.0.1, real SQLite)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import Engine

from tests.browser import BrowserPage
from tests.cloud_sync.conftest import ADMIN_TOKEN, batch, live_server, post_batch
from tests.cloud_sync.test_alarm_reasons import event_with_reason


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    """SQLite only for the page (the API test above covers both backends)."""
    return f"sqlite:///{tmp_path / 'cloud.db'}"


def test_fleet_page_shows_an_open_alarms_reason(
    app: FastAPI, engine: Engine, tokens: dict[str, str], client: httpx.Client, web: BrowserPage
) -> None:
    sent = event_with_reason(1)
    assert post_batch(client, tokens["pump-1"], batch(1, alarms=[sent])).status_code == 200
    with live_server(app) as base:
        page = web.page
        page.goto(base + "/")
        page.fill("input[name=token]", ADMIN_TOKEN)
        page.click("button[type=submit]")
        page.wait_for_selector("h1:has-text('Fleet')")
        web.errors.clear()  # the login form's 401 (test_fleet_page.py)
        row = page.locator("#alarms tr[data-alarm='pump-1/1']")
        reason = row.locator("td.reason details")
        assert "forecast 9.6 ≥ 9" in reason.locator("summary").inner_text()
        reason.locator("summary").click()
        text = reason.inner_text()
        assert "top channel" in text and "pressure" in text
        assert "likelihood 2.5" in text and "residual 0.4" in text
        svg = reason.locator("svg")
        values = svg.locator("polyline.line").get_attribute("points") or ""
        ahead = svg.locator("polyline.forecast").get_attribute("points") or ""
        assert len(values.split()) == 20 and len(ahead.split()) == 5  # from the last value
        assert svg.locator("line.limit").count() == 1
        web.screenshot("fleet-page-alarm-reason")
    assert web.errors == []
