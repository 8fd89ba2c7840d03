"""The status page as a person reads it, in headless Chromium against a real agent
(real uvicorn, real SQLite, a replayed CSV of four channels): every chart stays inside
its card at 800, 1280 and 1800 px and after the window is resized; the first paint
already shows the stored data and the store's reading count; alarms are grouped by rule
and channel, active first, filtered, with no Acknowledge on cleared ones; the alarm
outputs card turns red when the webhook to the control room fails. Screenshots land in
out/screenshots/."""

from __future__ import annotations

import math
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edge_agent.daemon.agent import Agent
from edgetwin_common.testing import wait_until
from tests.browser import BrowserPage
from tests.edge_agent.agent_harness import config_for, running_agent

ROWS = 300
T0 = 1_700_000_040  # on a 60 s boundary
TEMP_SPIKES = [(100, 110), (150, 160), (200, 210), (260, ROWS)]
"""temp above 80 °C: three raised and cleared, the last one still active."""
FLOW_DIP = (120, 130)


def _write_csv(path: Path) -> None:
    lines = ["timestamp,temp,flow,pressure,level"]
    for i in range(ROWS):
        hot = any(a <= i < b for a, b in TEMP_SPIKES)
        temp = 90.0 if hot else 40.0 + 0.5 * math.sin(i / 9)
        flow = 2.0 if FLOW_DIP[0] <= i < FLOW_DIP[1] else 12.0 + math.sin(i / 7)
        pressure = 3.0 + 0.2 * math.cos(i / 11)
        level = 50.0 + 5.0 * math.sin(i / 30)
        lines.append(f"{T0 + i},{temp:.4f},{flow:.4f},{pressure:.4f},{level:.4f}")
    path.write_text("\n".join(lines) + "\n")


def _dead_port() -> int:
    with socket.socket() as probe:  # nobody listens on it once closed
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Agent]:
    tmp_path = tmp_path_factory.mktemp("page")
    csv = tmp_path / "plant.csv"
    _write_csv(csv)
    loaded = config_for(
        tmp_path,
        f"""
[[sources]]
type = "replay"
name = "history"
path = "{csv}"
speed = 0

[channels.temp]
unit = "°C"

[channels.flow]
unit = "m³/h"

[[alarms]]
name = "temp-high"
channel = "temp"
type = "value_above"
set = 80
clear = 75
severity = "critical"
actions = ["log", "control-room"]

[[alarms]]
name = "flow-low"
channel = "flow"
type = "value_below"
set = 5
clear = 6

[[actions]]
type = "webhook"
name = "control-room"
url = "http://127.0.0.1:{_dead_port()}/alarms"
retries = 0

[http]
port = 0
""",
    )
    with running_agent(loaded) as running:
        wait_until(lambda: running.samples >= 4 * ROWS, "the replay to finish")
        running.store.flush()
        yield running


GEOMETRY = """() => {
  const box = (e) => { const r = e.getBoundingClientRect();
    return {left: r.left, top: r.top, right: r.right, bottom: r.bottom, width: r.width}; };
  return {
    viewport: window.innerWidth,
    scrollWidth: document.documentElement.scrollWidth,
    cards: [...document.querySelectorAll('.channel')].map((card) => {
      const style = getComputedStyle(card);
      const pad = parseFloat(style.paddingLeft) + parseFloat(style.paddingRight);
      const inner = card.clientWidth - pad;
      const chart = card.querySelector('.uplot');
      return {name: card.dataset.channel, card: box(card), inner,
              chart: chart ? box(chart) : null,
              canvas: chart ? box(chart.querySelector('canvas')) : null,
              legend: chart ? box(chart.querySelector('.u-legend')) : null};
    }),
  };
}"""


def _fits(geometry: dict[str, Any]) -> list[str]:
    """What is wrong with the layout: each problem as text (empty: all charts fit)."""
    problems = []
    if geometry["scrollWidth"] > geometry["viewport"]:
        problems.append(
            f"page scrolls sideways: {geometry['scrollWidth']} > {geometry['viewport']}"
        )
    cards = geometry["cards"]
    for c in cards:
        card = c["card"]
        if c["chart"] is None:
            problems.append(f"{c['name']}: no chart")
            continue
        for part in ("chart", "canvas", "legend"):
            b = c[part]
            if b["left"] < card["left"] - 0.5 or b["right"] > card["right"] + 0.5:
                problems.append(f"{c['name']}: {part} {b} outside its card {card}")
            if b["bottom"] > card["bottom"] + 0.5:
                problems.append(f"{c['name']}: {part} below its card")
        if c["canvas"]["width"] < 0.95 * c["inner"]:
            problems.append(
                f"{c['name']}: chart {c['canvas']['width']} px in a {c['inner']} px card"
            )
    for i, a in enumerate(cards):
        for b in cards[i + 1 :]:
            x = min(a["card"]["right"], b["card"]["right"]) - max(
                a["card"]["left"], b["card"]["left"]
            )
            y = min(a["card"]["bottom"], b["card"]["bottom"]) - max(
                a["card"]["top"], b["card"]["top"]
            )
            if x > 0.5 and y > 0.5:
                problems.append(f"cards {a['name']} and {b['name']} overlap")
    return problems


def _columns(web: BrowserPage) -> int:
    tops = web.page.evaluate(
        "() => [...document.querySelectorAll('.channel')].map(c => c.getBoundingClientRect().top)"
    )
    return max(sum(1 for t in tops if abs(t - top) < 1) for top in tops)


@pytest.mark.parametrize("width", [800, 1280, 1800])
def test_charts_fit_their_cards(agent: Agent, web: BrowserPage, width: int) -> None:
    page = web.page
    page.set_viewport_size({"width": width, "height": 900})
    page.goto(f"{agent.http_url}/?poll_ms=500")
    page.wait_for_function("() => document.querySelectorAll('.channel .uplot').length === 4")
    page.wait_for_function(f"() => (({GEOMETRY})().cards.every(c => c.chart))")
    geometry = page.evaluate(GEOMETRY)
    assert _fits(geometry) == []
    assert _columns(web) == {800: 1, 1280: 2, 1800: 3}[width]
    web.screenshot(f"status-page-{width}")
    assert web.errors == []


def test_charts_follow_a_window_resize(agent: Agent, web: BrowserPage) -> None:
    page = web.page
    page.goto(f"{agent.http_url}/?poll_ms=500")
    page.wait_for_function("() => document.querySelectorAll('.channel .uplot').length === 4")
    for width in (1800, 800, 1280):
        page.set_viewport_size({"width": width, "height": 900})
        # The ResizeObserver answers on the next frames: wait until the layout settles.
        page.wait_for_function(
            f"""() => {{ const g = ({GEOMETRY})();
                return g.cards.every(c => c.chart && c.canvas.width >= 0.95 * c.inner
                  && c.chart.right <= c.card.right + 0.5); }}"""
        )
        assert _fits(page.evaluate(GEOMETRY)) == [], f"after resizing to {width} px"
    assert web.errors == []


def test_first_paint_shows_the_stored_data(agent: Agent, web: BrowserPage) -> None:
    page = web.page
    # Records whether "waiting for the first sample" was ever on the page, from the
    # first byte on.
    page.add_init_script(
        """window.__sawWaiting = false;
        new MutationObserver(() => {
          if (document.body && document.body.innerText.includes('waiting for the first sample'))
            window.__sawWaiting = true;
        }).observe(document, {subtree: true, childList: true, characterData: true});"""
    )
    page.goto(f"{agent.http_url}/?poll_ms=60000")
    page.wait_for_function("() => window.edgeStatus.updates === 1")
    assert page.locator(".channel canvas").count() >= 4  # at the first update, not later
    assert page.evaluate("() => window.__sawWaiting") is False
    assert not page.locator("#no-channels").is_visible()
    rows = agent.store.stats().reading_rows
    assert rows == 4 * ROWS
    assert page.inner_text("#store-readings") == f"{rows:,} readings"
    assert web.errors == []


def test_alarms_grouped_active_first_and_filtered(agent: Agent, web: BrowserPage) -> None:
    page = web.page
    page.goto(f"{agent.http_url}/?poll_ms=60000")
    page.wait_for_function("() => window.edgeStatus.updates === 1")
    groups = page.locator("#alarms tbody")
    # Default filter "active": the one active alarm of temp-high, with its button.
    assert groups.count() == 1
    first = groups.first.locator("tr").first
    assert "temp-high" in first.inner_text() and "active" in first.inner_text()
    assert first.locator("button[data-ack]").count() == 1

    page.select_option("#alarm-filter", "all")
    page.wait_for_function("() => document.querySelectorAll('#alarms tbody').length === 2")
    names = [groups.nth(i).get_attribute("data-group") for i in range(groups.count())]
    assert names == ["temp-high/temp", "flow-low/flow"]  # active first
    temp, flow = groups.nth(0), groups.nth(1)
    assert temp.locator("td.count").inner_text().startswith(str(len(TEMP_SPIKES)))
    assert flow.locator("td.count").inner_text() == "1"
    assert "cleared" in flow.inner_text()
    assert flow.locator("button[data-ack]").count() == 0  # cleared: nothing to acknowledge

    temp.locator("td.count button").click()  # the earlier, cleared ones of the group
    page.wait_for_function(
        f"() => document.querySelectorAll('#alarms tbody')[0].querySelectorAll('tr.detail')"
        f".length === {len(TEMP_SPIKES) - 1}"
    )
    details = groups.nth(0).locator("tr.detail")
    assert all("cleared" in details.nth(i).inner_text() for i in range(details.count()))
    assert groups.nth(0).locator("tr.detail button").count() == 0
    web.screenshot("status-page-alarms-all")

    page.select_option("#alarm-channel", "flow")
    page.wait_for_function("() => document.querySelectorAll('#alarms tbody').length === 1")
    assert groups.first.get_attribute("data-group") == "flow-low/flow"
    page.select_option("#alarm-filter", "active")
    page.locator("#no-alarms").filter(has_text="No active alarms").wait_for()
    assert web.errors == []


def test_alarm_outputs_card_turns_red_when_the_webhook_fails(
    agent: Agent, web: BrowserPage
) -> None:
    wait_until(lambda: agent.actions["control-room"].counters["failed"] >= 1, "a delivery given up")
    page = web.page
    page.goto(f"{agent.http_url}/?poll_ms=60000")
    page.wait_for_function("() => window.edgeStatus.updates === 1")
    card = page.locator("#actions-card")
    assert "alert" in (card.get_attribute("class") or "")
    hook = page.locator("#actions li[data-action='control-room']")
    assert "failing" in hook.inner_text() and "ConnectError" in hook.inner_text()
    assert "last success never" in hook.inner_text()
    log = page.locator("#actions li[data-action='log']")
    assert "ok" in log.inner_text()
    web.screenshot("status-page-actions-failing")
    assert web.errors == []
