"""The status page's time range, in headless Chromium against a real agent that replayed
3 h 20 min of one channel at 1 Hz: ranges the raw readings cover are drawn from them,
longer ones from the store's interval summaries (mean in a min–max band, then the raw
readings since the last closed interval); the alarm level is a line across the chart
and the forecast path goes on past the last sample."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from edge_agent.daemon.agent import Agent
from edgetwin_common.testing import wait_until
from tests.browser import BrowserPage
from tests.edge_agent.agent_harness import config_for, replay_temp_toml, running_agent

ROWS = 12_000
T0 = 1_700_000_040  # on a 60 s boundary


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Agent]:
    tmp_path = tmp_path_factory.mktemp("range")
    csv = tmp_path / "temp.csv"
    rows = (f"{T0 + i},{50 + 10 * math.sin(i / 600) + (i % 5) * 0.2:.3f}" for i in range(ROWS))
    csv.write_text("timestamp,temp\n" + "\n".join(rows) + "\n")
    loaded = config_for(tmp_path, replay_temp_toml(csv) + "\n[http]\nport = 0\n")
    with running_agent(loaded) as running:
        wait_until(lambda: running.samples >= ROWS, "the replay to finish")
        running.store.flush()
        yield running


CHART = """() => { const c = window.edgeStatus.charts.temp; const u = c.plot;
  return {mode: c.mode, labels: u.series.map(s => s.label ?? null), data: u.data}; }"""


def _chart(web: BrowserPage, range_s: int) -> dict[str, Any]:
    web.page.select_option("#range", str(range_s))
    web.page.wait_for_function(f"() => window.edgeStatus.charts.temp?.drawnRange === {range_s}")
    chart: dict[str, Any] = web.page.evaluate(CHART)
    return chart


def _column(chart: dict[str, Any], label: str) -> list[float | None]:
    column: list[float | None] = chart["data"][chart["labels"].index(label)]
    return column


def test_ranges_from_raw_readings_and_from_summaries(agent: Agent, web: BrowserPage) -> None:
    page = web.page
    page.goto(f"{agent.http_url}/?poll_ms=500")
    page.wait_for_selector(".channel[data-channel='temp'] canvas")

    hour = _chart(web, 3600)
    assert hour["mode"] == "raw"
    values = [v for v in _column(hour, "value (°C)") if v is not None]
    assert 3590 <= len(values) <= 3601
    assert not page.locator("#range-note").inner_text()

    six_hours = _chart(web, 21600)
    assert six_hours["mode"] == "summaries"
    assert "mean (°C)" in six_hours["labels"] and "min" in six_hours["labels"]
    lows = [v for v in _column(six_hours, "min") if v is not None]
    highs = [v for v in _column(six_hours, "max") if v is not None]
    assert len(lows) >= ROWS // 60 - 2  # one point per closed 60 s interval
    assert all(hi > lo for lo, hi in zip(lows, highs, strict=True))  # a band, not a line
    means = [v for v in _column(six_hours, "mean (°C)") if v is not None]
    assert len(means) > len(lows)  # the raw readings after the last closed interval
    assert "summaries" in page.locator("#range-note").inner_text()
    web.screenshot("status-page-range-6h")

    minute = _chart(web, 60)
    assert minute["mode"] == "raw"
    assert 55 <= len([v for v in _column(minute, "value (°C)") if v is not None]) <= 61
    assert web.errors == []


def test_alarm_level_and_forecast_ahead(agent: Agent, web: BrowserPage) -> None:
    assert agent.http_url is not None
    page = web.page
    page.goto(f"{agent.http_url}/?poll_ms=500&range=300")
    page.wait_for_selector(".channel[data-channel='temp'] canvas")
    chart = _chart(web, 300)
    x = chart["data"][0]
    level = _column(chart, "temp-high: ≥ 80")
    assert set(level) == {80}
    assert x[0] <= x[-1] - 300  # the line spans the whole range

    status = httpx.get(agent.http_url + "/status", timeout=10).json()
    (channel,) = status["channels"]
    forecast = channel["forecast"]
    ahead_s = forecast.get("horizon_s") or [h * 1.0 for h in forecast["horizons"]]  # 1 Hz
    ahead = _column(chart, "forecast ahead")
    points = [(t, v) for t, v in zip(x, ahead, strict=True) if v is not None]
    assert points[0] == (channel["last_ts"], channel["last_value"])  # starts at the last sample
    offsets = sorted(t - channel["last_ts"] for t, _ in points[1:])
    assert offsets == pytest.approx(sorted(ahead_s))
    assert sorted(v for _, v in points[1:]) == pytest.approx(sorted(forecast["values"]))
    meta = page.inner_text(".channel[data-channel='temp'] .channel-meta")
    assert f"in {int(max(ahead_s))} s" in meta
    assert web.errors == []


def test_forecast_placed_at_horizon_s_when_the_agent_sends_it(
    agent: Agent, web: BrowserPage
) -> None:
    """The agent's /status gains horizon_s per forecast (a model fed minute means): the
    path is drawn that far ahead and the text says "in 16 min"."""
    page = web.page

    def with_horizon_s(route: Any) -> None:
        status = route.fetch().json()
        for channel in status["channels"]:
            forecast = channel["forecast"]
            forecast["horizon_s"] = [60.0 * h for h in forecast["horizons"]]
            forecast["model_period_s"] = 60.0
        route.fulfill(json=status)

    page.route("**/status", with_horizon_s)
    page.goto(f"{agent.http_url}/?poll_ms=500&range=3600")
    page.wait_for_selector(".channel[data-channel='temp'] canvas")
    chart = _chart(web, 3600)
    status = httpx.get(f"{agent.http_url}/status", timeout=10).json()
    (channel,) = status["channels"]
    x, ahead = chart["data"][0], _column(chart, "forecast ahead")
    offsets = sorted(t - channel["last_ts"] for t, v in zip(x, ahead, strict=True) if v is not None)
    assert offsets == pytest.approx([0.0] + [60.0 * h for h in channel["forecast"]["horizons"]])
    assert "in 16 min" in page.inner_text(".channel[data-channel='temp'] .channel-meta")
    # The page keeps polling: a /status in flight when the context closes is no error.
    page.unroute_all(behavior="ignoreErrors")
    assert web.errors == []
