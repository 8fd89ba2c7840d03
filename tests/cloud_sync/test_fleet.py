"""GET /v1/devices and the server-rendered fleet page."""

from __future__ import annotations

import time

import httpx
import pytest

from cloud_sync.fleet import Health, draw_chart, health_of
from cloud_sync.http.fleet_page import SESSION_COOKIE
from tests.cloud_sync.conftest import ADMIN, ADMIN_TOKEN, alarm_event, batch, post_batch, reported
from tests.cloud_sync.conftest import summary as make_summary


def _feed(client: httpx.Client, tokens: dict[str, str]) -> None:
    start = time.time() - 3600
    summaries = [make_summary(start=start + 60 * i, mean=float(i % 7)) for i in range(30)]
    summaries.append(make_summary(channel="<b>temp</b>", start=start))
    body = batch(
        1,
        summaries=summaries,
        alarms=[alarm_event(1), alarm_event(2)],
        reported=reported(3, desired_applied=0),
    )
    assert post_batch(client, tokens["pump-1"], body).status_code == 200


def test_device_list(client: httpx.Client, tokens: dict[str, str]) -> None:
    _feed(client, tokens)
    rows = client.get("/v1/devices", headers=ADMIN).json()
    assert [r["name"] for r in rows] == ["pump-1", "pump-2"]
    pump1, pump2 = rows
    assert pump1["model_version"] == "1.0.0"
    assert pump1["open_alarms"] == 2
    assert pump1["health"] == "ok"
    assert pump1["reported_version"] == 3 and pump1["desired_version"] == 0
    assert pump1["last_seen"] == pytest.approx(time.time(), abs=30)
    assert pump2 == {
        "name": "pump-2",
        "last_seen": None,
        "model_version": None,
        "model_update": None,
        "twin_version": None,
        "twin_update": None,
        "open_alarms": 0,
        "health": "unknown",
        "reported_version": None,
        "desired_version": 0,
        "is_desired_applied": False,
        "last_sequence": 0,
        "is_online": None,
    }


def test_fleet_page_shows_devices_with_charts(client: httpx.Client, tokens: dict[str, str]) -> None:
    _feed(client, tokens)
    page = client.get("/", headers=ADMIN)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    html = page.text
    assert "pump-1" in html and "pump-2" in html
    assert html.count("<svg") == 2  # pump-1: pressure and the oddly named channel
    assert "<polyline" in html
    # Names come from devices: escaped, never markup.
    assert "&lt;b&gt;temp&lt;/b&gt;" in html and "<b>temp</b>" not in html
    assert "no summaries yet" in html  # pump-2


def test_fleet_page_login_with_a_session_cookie(
    client: httpx.Client, tokens: dict[str, str]
) -> None:
    anonymous = client.get("/")
    assert anonymous.status_code == 401 and 'name="token"' in anonymous.text

    wrong = client.post("/login", data={"token": "guess"}, follow_redirects=False)
    assert wrong.status_code == 401
    assert SESSION_COOKIE not in wrong.cookies

    device = client.post("/login", data={"token": tokens["pump-1"]}, follow_redirects=False)
    assert device.status_code == 401

    right = client.post("/login", data={"token": ADMIN_TOKEN}, follow_redirects=False)
    assert right.status_code == 303
    set_cookie = right.headers["set-cookie"].lower()
    assert "httponly" in set_cookie and "samesite=strict" in set_cookie
    assert ADMIN_TOKEN.lower() not in set_cookie  # a signed session, not the token
    assert client.get("/").status_code == 200
    # The cookie opens the page only, not the API.
    assert client.get("/v1/devices").status_code == 401

    client.post("/logout", follow_redirects=False)
    assert client.get("/").status_code == 401

    client.cookies.set(SESSION_COOKIE, f"{int(time.time()) + 3600}.forged")
    assert client.get("/").status_code == 401


def test_health_from_reports() -> None:
    now = 1000.0
    good = reported(1)
    assert health_of(None, None, now, 60) is Health.UNKNOWN
    assert health_of(good, now - 10, now, 60) is Health.OK
    assert health_of(good, now - 61, now, 60) is Health.STALE
    down = reported(1, sources={"serial0": {"state": "disconnected"}})
    assert health_of(down, now, now, 60) is Health.DEGRADED
    stuck = reported(1, channels={"pressure": {"health": ["stuck"]}})
    assert health_of(stuck, now, now, 60) is Health.DEGRADED


def test_chart_of_a_flat_or_single_point_series() -> None:
    flat = draw_chart("p", [(0.0, 1.0, 1.0, 1.0), (60.0, 1.0, 1.0, 1.0)])
    assert flat.line == "2.0,24.0 238.0,24.0"
    single = draw_chart("p", [(0.0, 1.0, 2.0, 3.0)])
    assert single.points == 1 and single.line == "120.0,24.0"
    rising = draw_chart("p", [(0.0, 0.0, 0.0, 0.0), (1.0, 10.0, 10.0, 10.0)], height=48)
    assert rising.line == "2.0,46.0 238.0,2.0"  # SVG y grows downwards
