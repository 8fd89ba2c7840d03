"""An alarm's reason from the device to the cloud (docs/cloud.md, "Alarm events"): the
batch carries it, ingest stores it, GET /v1/devices/{name}/alarm-events, the twin's
open alarms and the fleet page (headless Chromium) show it; a bad reason (NaN, arrays
too long, wrong types, deep nesting, unpaired points) is refused with a 422 naming
where, nothing stored. In process and through a real uvicorn, on SQLite and PostgreSQL
(the fleet page: test_alarm_reason_page.py)."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine

from edge_agent.alarms.reason import AlarmReason, WindowSnapshot
from edgetwin_contracts.batch import MAX_REASON_PARTS, MAX_WINDOW_POINTS
from tests.cloud_sync.conftest import (
    ADMIN,
    alarm_event,
    batch,
    post_batch,
    stored,
)


def device_reason(ts: float) -> dict[str, Any]:
    """A reason as the device writes it (``AlarmReason.to_dict()``): a forecast rule on
    pressure, 20 steps of window and the forecast 4 horizons ahead."""
    steps = [ts - 60.0 * (19 - i) for i in range(20)]
    reason = AlarmReason(
        rule="pressure_high",
        trigger="forecast",
        top_channel="pressure",
        value=9.6,
        limit=9.0,
        direction="above",
        parts={"residual": 0.4, "spread": 0.1, "likelihood": 2.5, "novelty": 0.0, "score": 2.5},
        window=WindowSnapshot(
            ts=tuple(steps),
            values=tuple(5.0 + 0.2 * i for i in range(20)),
            forecast_ts=steps[-1],
            horizons_s=(60.0, 120.0, 240.0, 480.0),
            forecast=(8.9, 9.1, 9.3, 9.6),
        ),
    )
    return reason.to_dict()


def event_with_reason(alarm_id: int = 1) -> dict[str, Any]:
    event = alarm_event(alarm_id)
    event["alarm"]["reason"] = device_reason(event["ts"])
    return event


def test_the_reason_is_stored_and_shown_by_the_api(
    api: httpx.Client, engine: Engine, tokens: dict[str, str]
) -> None:
    sent = event_with_reason(1)
    old = alarm_event(2)  # a device from before reasons
    assert post_batch(api, tokens["pump-1"], batch(1, alarms=[sent, old])).status_code == 200

    events = api.get("/v1/devices/pump-1/alarm-events", headers=ADMIN)
    assert events.status_code == 200, events.text
    by_id = {e["alarm"]["id"]: e for e in events.json()}
    assert by_id[1]["alarm"]["reason"] == sent["alarm"]["reason"]
    assert by_id[2]["alarm"]["reason"] is None
    one = api.get("/v1/devices/pump-1/alarm-events?alarm_id=1", headers=ADMIN).json()
    assert [e["alarm"]["id"] for e in one] == [1]
    # The device itself may read its own; another device may not.
    own = api.get("/v1/devices/pump-1/alarm-events", headers=_bearer(tokens["pump-1"]))
    assert own.status_code == 200
    other = api.get("/v1/devices/pump-1/alarm-events", headers=_bearer(tokens["pump-2"]))
    assert other.status_code == 403
    missing = api.get("/v1/devices/nobody/alarm-events", headers=ADMIN)
    assert missing.status_code == 404 and "nobody" in missing.text

    twin = api.get("/v1/devices/pump-1/twin", headers=ADMIN).json()
    reasons = {a["id"]: a["reason"] for a in twin["open_alarms"]}
    assert reasons[1] == sent["alarm"]["reason"]


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


OVERFLOW = 7.77e77
"""Sent as the literal 1e999 (a finite-looking number that overflows to infinity)."""


def _bad_reasons() -> list[Any]:
    def edit(change: Any) -> dict[str, Any]:
        reason = device_reason(time.time() - 30)
        change(reason)
        return reason

    def window(**fields: Any) -> Any:
        return lambda r: r["window"].update(fields)

    n = MAX_WINDOW_POINTS + 1
    deep: Any = 1.0
    for _ in range(40):
        deep = {"x": deep}
    return [
        pytest.param(edit(window(values=[float("nan")] * 20)), "NaN", id="nan-value"),
        pytest.param(edit(lambda r: r.update(limit=float("inf"))), "Infinity", id="inf-limit"),
        pytest.param(edit(lambda r: r["parts"].update(score=float("nan"))), "NaN", id="nan-part"),
        pytest.param(edit(lambda r: r.update(value=OVERFLOW)), "value", id="overflow-value"),
        pytest.param(
            edit(window(ts=[1e9 + i for i in range(n)], values=[1.0] * n)), "ts", id="long-window"
        ),
        pytest.param(
            edit(lambda r: r.update(parts={f"p{i}": 1.0 for i in range(MAX_REASON_PARTS + 1)})),
            "parts",
            id="too-many-parts",
        ),
        pytest.param(edit(lambda r: r.update(value="9.6")), "value", id="number-as-string"),
        pytest.param(edit(lambda r: r.update(trigger="magic")), "trigger", id="unknown-trigger"),
        pytest.param(edit(lambda r: r["parts"].update(score=deep)), "score", id="deep-nesting"),
        pytest.param(edit(lambda r: r.update(extra=1)), "extra", id="unknown-key"),
        pytest.param(edit(window(values=[1.0] * 19)), "window", id="unpaired"),
        pytest.param(edit(lambda r: r.update(top_channel="x" * 65)), "top_channel", id="long-name"),
    ]


@pytest.mark.parametrize(("reason", "where"), _bad_reasons())
def test_a_bad_reason_is_refused_naming_where(
    api: httpx.Client, engine: Engine, tokens: dict[str, str], reason: dict[str, Any], where: str
) -> None:
    event = alarm_event(1)
    event["alarm"]["reason"] = reason
    text = json.dumps(batch(1, alarms=[event]))  # NaN and Infinity as those literals
    before = stored(engine)
    response = post_batch(api, tokens["pump-1"], text.replace(repr(OVERFLOW), "1e999").encode())
    if where in ("NaN", "Infinity"):  # not JSON at all: refused before validation
        assert response.status_code == 400, response.text
        assert f"{where} is not JSON" in response.json()["detail"]
        assert stored(engine) == before
        return
    assert response.status_code == 422, response.text
    problems = response.json()["detail"]
    locs = [p["loc"] for p in problems]
    reason_at = ["body", "alarms", 0, "alarm", "reason"]
    assert any(loc[:5] == reason_at and where in loc[5:] for loc in locs), locs
    assert stored(engine) == before


def test_a_window_from_before_2000_is_refused_as_a_clock_error(
    api: httpx.Client, engine: Engine, tokens: dict[str, str]
) -> None:
    event = event_with_reason(1)
    event["alarm"]["reason"]["window"]["ts"][0] = 3600.0  # a Pi without RTC, at boot
    before = stored(engine)
    response = post_batch(api, tokens["pump-1"], batch(1, alarms=[event]))
    assert response.status_code == 422, response.text
    (problem,) = response.json()["detail"]
    assert problem["loc"][-3:] == ["window", "ts", 0] and problem["type"] == "timestamp_range"
    assert stored(engine) == before
