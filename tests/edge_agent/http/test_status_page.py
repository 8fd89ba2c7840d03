"""The status page at / in headless Chromium: real agent, real uvicorn on 127.0.0.1,
real SQLite. It shows charts with data points, acknowledges an alarm with its button,
and shows a clear state with no data yet, a disconnected source and no model; no
console errors in any case. Screenshots land in out/screenshots/."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from edge_agent.daemon.agent import Agent
from edgetwin_common.testing import free_port, wait_until
from tests.browser import BrowserPage
from tests.edge_agent.agent_harness import config_for, replay_temp_toml, running_agent
from tests.edge_agent.integration.helpers import agent_process, agent_toml

ROWS = 300
STEP_AT = 240


def _write_csv(path: Path) -> None:
    t0 = 1_700_000_000
    lines = ["timestamp,temp"]
    for i in range(ROWS):
        value = 40.0 + 0.5 * ((i % 30) / 15.0 - 1.0) ** 2 + (50.0 if i >= STEP_AT else 0.0)
        lines.append(f"{t0 + i},{value:.4f}")
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture
def replaying_agent(tmp_path: Path) -> Iterator[Agent]:
    csv = tmp_path / "pump.csv"
    _write_csv(csv)
    loaded = config_for(
        tmp_path,
        replay_temp_toml(csv) + "\n[http]\nport = 0\n",
    )
    with running_agent(loaded) as agent:
        yield agent


def test_live_charts_and_acknowledge(replaying_agent: Agent, web: BrowserPage) -> None:
    url = replaying_agent.http_url
    assert url is not None
    wait_until(lambda: replaying_agent.samples >= ROWS, "the replay to finish")
    page = web.page
    page.goto(url + "/?poll_ms=250")
    page.wait_for_selector(".channel[data-channel='temp'] canvas")
    page.wait_for_function("() => (window.edgeStatus.charts.temp?.plot?.data[0].length ?? 0) > 100")
    points = page.evaluate(
        "() => { const u = window.edgeStatus.charts.temp.plot;"
        " const col = (label) => u.data[u.series.findIndex(s => s.label === label)];"
        " return {n: col('value (°C)').filter(v => v !== null).length,"
        " forecasts: col('forecast').filter(v => v !== null).length,"
        " scores: col('score').filter(v => v !== null).length}; }"
    )
    assert points["n"] >= ROWS - 10
    assert points["forecasts"] > 0 and points["scores"] > 0
    assert "edgetwin-generic-forecaster" in page.inner_text("#model")
    assert "finished" in page.inner_text("#sources")

    button = page.locator("#alarms button[data-ack]").first
    alarm_id = int(button.get_attribute("data-ack") or "0")
    assert alarm_id > 0
    button.click()
    cell = page.locator(f"#alarms tr[data-alarm='{alarm_id}'] td.ack")
    cell.filter(has_not=page.locator("button")).wait_for()
    assert cell.inner_text().strip()  # the time it was acknowledged
    alarms = httpx.get(f"{url}/alarms", timeout=10).json()
    acked = next(a for a in alarms if a["id"] == alarm_id)
    assert acked["acked_at"] is not None and acked["state"] == "active_acknowledged"
    web.screenshot("status-page-live")
    assert web.errors == []


def test_no_data_yet_and_a_disconnected_source(tmp_path: Path, web: BrowserPage) -> None:
    master, slave = os.openpty()  # a device that is there and says nothing
    try:
        loaded = config_for(
            tmp_path,
            f"""
[[sources]]
type = "serial"
name = "quiet"
port = "{os.ttyname(slave)}"
format = "csv"
csv_fields = ["temp"]
[sources.fields.temp]
channel = "temp"

[[sources]]
type = "serial"
name = "unplugged"
port = "{tmp_path / "ttyUSB-gone"}"
format = "csv"
csv_fields = ["flow"]
backoff = {{ initial_s = 0.1, max_s = 0.2 }}
[sources.fields.flow]
channel = "flow"

[http]
port = 0
""",
        )
        with running_agent(loaded) as agent:
            wait_until(
                lambda: (
                    {s.name: s.health.state.value for s in agent.sources}
                    == {"quiet": "connected", "unplugged": "disconnected"}
                ),
                "one source connected, one disconnected",
            )
            page = web.page
            page.goto(f"{agent.http_url}/?poll_ms=250")
            page.wait_for_function("() => window.edgeStatus.updates > 0")
            empty = page.locator("#no-channels")
            assert empty.is_visible()
            assert "No data yet: waiting for the first reading" in empty.inner_text()
            gone = page.locator("#sources li[data-source='unplugged']")
            assert "disconnected" in gone.inner_text()
            assert "ttyUSB-gone" in gone.inner_text()  # the source's own error
            assert "connected" in page.inner_text("#sources li[data-source='quiet']")
            flow = page.locator(".channel[data-channel='flow'] .empty")
            assert "from unplugged (disconnected)" in flow.inner_text()
            assert page.locator(".channel canvas").count() == 0  # no empty charts
            assert page.locator("#no-alarms").is_visible()
            web.screenshot("status-page-no-data-disconnected")
    finally:
        os.close(master)
        os.close(slave)
    assert web.errors == []


def test_agent_without_a_model_says_why(tmp_path: Path, web: BrowserPage) -> None:
    port = free_port()
    config = tmp_path / "agent.toml"
    text = agent_toml(tmp_path, 'on_model_failure = "serve-status"\n', port=port)
    missing = tmp_path / "no-such-bundle"
    config.write_text(
        text + f'\n[model]\nbundle = "{missing}"\npublic_key = "{tmp_path / "key.pem"}"\n'
    )
    with agent_process(config, port, tmp_path / "agent.log") as agent:
        wait_until(lambda: _answers(agent.url), "the no-model agent's HTTP API")
        assert agent.get("/status")["model"] is None
        assert httpx.get(agent.url + "/ready", timeout=5).status_code == 503
        summaries = httpx.get(agent.url + "/summaries?channel=temp", timeout=5)
        assert summaries.status_code == 503 and "without a model" in summaries.json()["detail"]
        page = web.page
        page.goto(agent.url + "/?poll_ms=250")
        page.wait_for_function("() => window.edgeStatus.updates > 0")
        assert "No model loaded" in page.inner_text("#model")
        problem = page.locator("#problem")
        assert problem.is_visible() and "no model" in problem.inner_text()
        assert "not running without a model" in page.inner_text("#no-channels")
        web.screenshot("status-page-no-model")
        assert agent.signal(signal.SIGTERM) != 0  # the exit code still says the model failed
    assert web.errors == []


def test_unreachable_agent_shows_a_banner(replaying_agent: Agent, web: BrowserPage) -> None:
    page = web.page
    page.goto(f"{replaying_agent.http_url}/?poll_ms=250")
    page.wait_for_function("() => window.edgeStatus.updates > 0")
    # The page's own requests start failing (as when the agent restarts).
    page.route("**/status", lambda route: route.abort())
    page.locator("#connection").filter(has_text="Cannot reach the agent").wait_for()
    assert page.locator(".channel[data-channel='temp']").is_visible()  # last data stays
    page.unroute("**/status")
    page.locator("#connection").wait_for(state="hidden")
    assert not [e for e in web.errors if "pageerror" in e]


def _answers(url: str) -> bool:
    try:
        return httpx.get(url + "/status", timeout=2).status_code == 200
    except httpx.TransportError:
        return False
