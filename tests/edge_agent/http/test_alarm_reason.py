"""Every alarm carries its reason (docs/alarms.md, "Why an alarm was raised"): a real
agent (real replay, the shipped forecaster, real SQLite, real uvicorn) raises value,
forecast and score alarms on a step; /alarms, a webhook receiver on a real server, a
real Mosquitto subscriber and the status page in headless Chromium all show the rule,
the value and limit, the score's parts, the top channel and the window with its
forecast."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from edge_agent.daemon.agent import Agent
from edge_agent.daemon.alarm_views import reported_alarm
from edgetwin_common.mosquitto import Mosquitto
from edgetwin_common.testing import wait_until
from edgetwin_contracts.batch import MAX_WINDOW_POINTS, AlarmReasonRecord, Batch
from tests.browser import BrowserPage
from tests.edge_agent.actions.test_webhook import Receiver, Server
from tests.edge_agent.agent_harness import config_for, running_agent
from tests.mqtt_broker import Subscriber, require_mosquitto

T0 = 1_700_000_040
ROWS = 300
STEP_AT = 240
"""temp jumps by 50 °C here: every rule below raises on it."""


def _write_csv(path: Path) -> None:
    lines = ["timestamp,temp"]
    for i in range(ROWS):
        value = 40.0 + 2.0 * math.sin(i / 9) + (50.0 if i >= STEP_AT else 0.0)
        lines.append(f"{T0 + i},{value:.4f}")
    path.write_text("\n".join(lines) + "\n")


RULES = ("temp-high", "temp-forecast-high", "temp-odd")


@pytest.fixture(scope="module")
def hook() -> Iterator[Server]:
    server = Server()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    require_mosquitto()
    with Mosquitto(tmp_path_factory.mktemp("broker")) as running:
        yield running


@pytest.fixture(scope="module")
def mqtt_seen(broker: Mosquitto) -> Iterator[Subscriber]:
    sub = Subscriber(broker, ["edgetwin/#"])
    yield sub
    sub.close()


@pytest.fixture(scope="module")
def agent(
    tmp_path_factory: pytest.TempPathFactory,
    hook: Server,
    broker: Mosquitto,
    mqtt_seen: Subscriber,
) -> Iterator[Agent]:
    hook.receiver = Receiver()
    hook.receiver.hold.set()
    tmp_path = tmp_path_factory.mktemp("reason")
    csv = tmp_path / "pump.csv"
    _write_csv(csv)
    body = f"""
[[sources]]
type = "replay"
name = "history"
path = "{csv}"
speed = 0

[channels.temp]
unit = "°C"

[[alarms]]
name = "temp-high"
channel = "temp"
type = "value_above"
set = 80
severity = "critical"
actions = ["log", "control-room", "plant-broker"]

[[alarms]]
name = "temp-forecast-high"
channel = "temp"
type = "forecast_above"
set = 60

[[alarms]]
name = "temp-odd"
channel = "temp"
type = "score_above"
set = 20

[[actions]]
type = "webhook"
name = "control-room"
url = "{hook.url}"
retries = 2

[[actions]]
type = "mqtt"
name = "plant-broker"
interval_s = 0.1
broker = {{ port = {broker.port} }}

[http]
port = 0
"""
    with running_agent(config_for(tmp_path, body)) as running:
        wait_until(lambda: running.samples >= ROWS, "the replay to finish")
        running.store.flush()
        yield running


def _check_reason(alarm: dict[str, Any], rule: str) -> None:
    """Every field of the reason of an alarm raised on the step; the contract accepts it."""
    reason = alarm["reason"]
    AlarmReasonRecord.model_validate(reason)
    assert reason["rule"] == rule and reason["top_channel"] == "temp"
    trigger = {"temp-high": "value", "temp-forecast-high": "forecast", "temp-odd": "score"}
    assert reason["trigger"] == trigger[rule]
    limit = {"temp-high": 80.0, "temp-forecast-high": 60.0, "temp-odd": 20.0}[rule]
    assert reason["limit"] == limit and reason["direction"] == "above"
    assert reason["value"] >= limit
    parts = reason["parts"]
    assert {"residual", "spread", "score"} <= parts.keys()
    assert parts["residual"] > 0 and parts["spread"] > 0
    window = reason["window"]
    assert 2 <= len(window["ts"]) == len(window["values"]) <= MAX_WINDOW_POINTS
    assert window["ts"] == sorted(window["ts"])
    # The window ends at the moment the alarm was raised (a model step per sample).
    assert window["ts"][-1] == alarm["raised_at"] >= T0 + STEP_AT
    assert max(window["values"]) > 80 > min(window["values"])
    assert len(window["forecast"]) == len(window["horizons_s"]) >= 1
    assert window["forecast_ts"] == window["ts"][-1]
    assert all(h > 0 for h in window["horizons_s"])


def test_alarms_api_carries_the_reason(agent: Agent) -> None:
    url = agent.http_url
    assert url is not None
    alarms = httpx.get(f"{url}/alarms", timeout=10).json()
    by_rule = {a["rule"]: a for a in reversed(alarms)}  # the newest of each rule
    assert set(RULES) <= by_rule.keys()
    for rule in RULES:
        _check_reason(by_rule[rule], rule)
    active = httpx.get(f"{url}/alarms?active=true", timeout=10).json()
    assert all(a["reason"] is not None for a in active)  # from memory, not the store
    # One alarm, open (the engine's) or closed (the store's), with its reason; the list
    # without reasons for a page that polls it.
    for a in (by_rule["temp-high"], by_rule["temp-odd"]):
        one = httpx.get(f"{url}/alarms/{a['id']}", timeout=10).json()
        assert one["reason"] == a["reason"]
    assert httpx.get(f"{url}/alarms/99999", timeout=10).status_code == 404
    light = httpx.get(f"{url}/alarms?reason=false", timeout=10).json()
    assert len(light) == len(alarms) and all(a["reason"] is None for a in light)
    # The score rule's parts are the score it raised on.
    odd = by_rule["temp-odd"]["reason"]
    assert odd["parts"]["score"] == pytest.approx(odd["value"])


def test_the_stored_events_make_a_batch_the_cloud_takes(agent: Agent) -> None:
    """What the sync sends: the stored events' payloads, reasons and all."""
    events = [e.to_dict() for e in agent.store.alarm_events(limit=1000)]
    assert events and all(e["alarm"]["reason"] is not None for e in events)
    batch = Batch.model_validate({"sequence": 1, "created_at": T0 + ROWS, "alarms": events})
    assert all(e.alarm.reason is not None for e in batch.alarms)
    # The reported state lists the open alarms without it: the events carried it once.
    reported = [reported_alarm(a) for a in agent.engine.open_alarms()]
    assert reported and all(a.reason is None for a in reported)
    assert all(a.reason is not None for a in agent.engine.open_alarms())  # untouched


def test_webhook_and_mqtt_payloads_carry_the_reason(
    agent: Agent, hook: Server, mqtt_seen: Subscriber
) -> None:
    wait_until(lambda: hook.receiver.bodies, "the webhook to be called")
    raised = next(b for b in hook.receiver.bodies if b["kind"] == "raised")
    _check_reason(raised["alarm"], "temp-high")
    topic = "edgetwin/test-agent/alarms/temp-high/event"
    wait_until(lambda: mqtt_seen.on(topic), "the MQTT alarm event")
    event = json.loads(mqtt_seen.on(topic)[0].payload)
    _check_reason(event["alarm"], "temp-high")


def test_status_page_shows_the_reason_of_a_clicked_alarm(agent: Agent, web: BrowserPage) -> None:
    page = web.page
    page.goto(f"{agent.http_url}/?poll_ms=500")
    page.wait_for_function("() => window.edgeStatus.updates > 0")
    page.select_option("#alarm-filter", "all")  # the score alarm has cleared
    drawn = _click_alarm(page, "temp-forecast-high")
    assert drawn["values"] >= 2 and drawn["forecast"] >= 2 and drawn["limit"] >= 2
    text = page.inner_text("#alarm-reason")
    assert "temp-forecast-high" in text and "forecast" in text and "limit 60" in text
    assert "top channel" in text and "residual" in text and "forecast then" in text
    # A score alarm: its limit is not in °C, so no line; its parts name the score.
    drawn = _click_alarm(page, "temp-odd")
    assert drawn["values"] >= 2 and drawn["forecast"] >= 2 and drawn["limit"] == 0
    text = page.inner_text("#alarm-reason")
    assert "temp-odd" in text and "score" in text and "limit 20" in text
    web.screenshot("status-page-alarm-reason")
    # The table is redrawn on every poll: the panel stays on its alarm.
    page.wait_for_function("() => window.edgeStatus.updates > 2")
    assert "temp-odd" in page.inner_text("#alarm-reason")
    page.locator("#alarm-reason button.close").click()
    page.locator("#alarm-reason.hidden").wait_for(state="attached")
    assert web.errors == []


def _click_alarm(page: Any, rule: str) -> dict[str, int]:
    """Click the rule's alarm row; how many points the reason's chart draws per series."""
    page.locator(f"#alarms tbody[data-group='{rule}/temp'] tr").first.locator("td").nth(2).click()
    page.wait_for_function(
        f"() => document.querySelector('#reason-title').textContent.includes(' {rule} ')"
    )
    page.locator("#alarm-reason:not(.hidden) canvas").first.wait_for()
    drawn: dict[str, int] = page.evaluate(
        "() => { const u = window.edgeReason.plot;"
        " const col = (label) => u.data[u.series.findIndex(s => s.label === label)];"
        " return {values: col('value').filter(v => v !== null).length,"
        " forecast: col('forecast').filter(v => v !== null).length,"
        " limit: col('limit').filter(v => v !== null).length}; }"
    )
    return drawn
