"""POST /twin/whatif on a running agent (real uvicorn, real SQLite): the pump simulator's
readings (load included) replayed into the store, the twin started from their 1-minute
summaries, and a scenario's answer checked against the store's own last state."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator

import httpx
import pytest

from edge_agent.daemon.agent import Agent
from edge_agent.simulator.pump import SimulatorSettings, generate_series
from edgetwin_common.testing import wait_until
from tests.browser import BrowserPage
from tests.edge_agent.agent_harness import config_for, running_agent

MINUTES = 30
CHANNELS = ("bearing_temp", "vibration", "current", "ambient")


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Agent]:
    tmp = tmp_path_factory.mktemp("twin")
    frames = generate_series(SimulatorSettings(rate_hz=1.0, seed=4), MINUTES * 60.0)
    t0 = math.floor(time.time() / 60) * 60 - MINUTES * 60  # ends at the current minute
    lines = ["timestamp," + ",".join(CHANNELS) + ",load"]
    for f in frames:
        values = ",".join(f"{v:.3f}" for v in f.reported.as_dict().values())
        lines.append(f"{t0 + f.t:.0f},{values},{f.load:.4f}")
    csv = tmp / "pump.csv"
    csv.write_text("\n".join(lines) + "\n")
    loaded = config_for(
        tmp,
        f"""
[[sources]]
type = "replay"
name = "pump"
path = "{csv}"
speed = 0

[[alarms]]
name = "bearing-hot"
channel = "bearing_temp"
type = "value_above"
set = 70
clear = 68

[twin]
controls = ["load"]

[http]
port = 0
""",
    )
    with running_agent(loaded) as running:
        wait_until(lambda: running.samples >= len(frames) * 5, "the replay to finish")
        yield running


def _post(agent: Agent, body: object) -> httpx.Response:
    assert agent.http_url is not None
    return httpx.post(agent.http_url + "/twin/whatif", json=body, timeout=10)


def test_a_scenario_answers_paths_bands_and_the_first_crossing(agent: Agent) -> None:
    assert agent.http_url is not None
    info = httpx.get(agent.http_url + "/twin", timeout=10).json()
    assert info["available"] is True and info["controls"] == ["load"] and info["period_s"] == 60.0
    body = {"controls": {"load": [{"value": 1.0, "minutes": 30}, {"value": 0.6, "minutes": 30}]}}
    answer = wait_until_answer(agent, body)
    assert answer["steps"] == 60 and answer["controls"]["load"][29:31] == [1.0, 0.6]
    paths = {c["channel"]: c for c in answer["channels"]}
    assert set(paths) == set(CHANNELS)
    current = paths["current"]["values"]
    assert 20.0 < current[5] < 22.0 and 15.0 < current[40] < 17.0  # 7.5 + 13.5 * load
    bearing = paths["bearing_temp"]["values"]
    crossing = answer["crossing"]
    if max(bearing) >= 70:
        first = next(i for i, v in enumerate(bearing) if v >= 70) + 1
        assert crossing["rule"] == "bearing-hot" and crossing["step"] == first
        assert crossing["after_s"] == 60.0 * first
    else:
        assert crossing is None
    bands = paths["bearing_temp"]
    assert all(
        lo < v < hi for lo, v, hi in zip(bands["lower"], bearing, bands["upper"], strict=True)
    )


def wait_until_answer(agent: Agent, body: object) -> dict:
    """The first 200 answer (the store flushes its summaries every few seconds)."""
    found: list[dict] = []

    def ready() -> bool:
        response = _post(agent, body)
        if response.status_code == 200:
            found.append(response.json())
        return bool(found)

    wait_until(ready, "a what-if answer")
    return found[0]


@pytest.mark.parametrize(
    ("body", "status", "loc"),
    [
        ({"controls": {"speed": [{"value": 1.0, "minutes": 5}]}}, 422,
         ["body", "controls", "speed"]),
        ({"controls": {"load": [{"value": 2.0, "minutes": 5}]}}, 422,
         ["body", "controls", "load", "0", "value"]),
        ({"controls": {"load": [{"value": 0.5, "minutes": 0.5}]}}, 422,
         ["body", "controls", "load", "0", "minutes"]),
        ({"controls": {"load": [{"value": "high", "minutes": 5}]}}, 422,
         ["body", "controls", "load", 0, "value"]),
        ({"controls": {"load": []}}, 422, ["body", "controls", "load"]),
        ({}, 422, ["body", "controls"]),
    ],
)  # fmt: skip
def test_bad_scenarios_are_422_naming_the_field(
    agent: Agent, body: object, status: int, loc: list[object]
) -> None:
    response = _post(agent, body)
    assert response.status_code == status, response.text
    assert response.json()["detail"][0]["loc"] == loc


def test_the_status_page_runs_a_scenario(agent: Agent, web: BrowserPage) -> None:
    assert agent.http_url is not None
    page = web.page
    page.goto(agent.http_url + "/")
    page.wait_for_selector("#whatif:not(.hidden) input[data-control='load']")
    page.fill("input[data-control='load']", "1.0 20, 0.5 40")
    page.click("#whatif-form button")
    page.wait_for_selector("#whatif-charts [data-whatif='current'] canvas")
    drawn = page.evaluate(
        "() => ({plots: window.edgeWhatIf.plots.length,"
        " points: window.edgeWhatIf.plots[0].data[0].length,"
        " load: window.edgeWhatIf.answer.controls.load.slice(18, 22)})"
    )
    assert drawn == {"plots": 4, "points": 60, "load": [1.0, 1.0, 0.5, 0.5]}
    assert page.text_content("#whatif-crossing")
    page.fill("input[data-control='load']", "1.7 20")
    page.click("#whatif-form button")
    page.wait_for_function("() => document.getElementById('whatif-error').textContent")
    assert "controls.load.0.value" in (page.text_content("#whatif-error") or "")
    page.fill("input[data-control='load']", "lots")
    page.click("#whatif-form button")
    page.wait_for_function(
        "() => document.getElementById('whatif-error').textContent.includes('segment 1')"
    )
    web.screenshot("twin-whatif")
    # the browser logs the refused scenario's 422 itself; nothing else may be logged
    assert [e for e in web.errors if "status of 422" not in e] == []
