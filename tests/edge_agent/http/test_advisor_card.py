"""The advisor's card on the status page, in headless Chromium: a real agent replaying
the simulated pump's readings, the advisor enabled, its setpoint action writing to a
real pty. The card shows the recommendation and its margin; the override control holds
the pump (the pty receives the line), refuses a value outside the bounds with the
agent's reason, and releases. An agent without an advisor shows no card."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from edge_agent.simulator import SimulatorSettings, generate_series, parse_fault
from edge_agent.simulator.device import PtyDevice
from edgetwin_common.testing import wait_until
from tests.browser import BrowserPage
from tests.edge_agent.agent_harness import config_for, running_agent

ROWS = 900
T0 = 1_700_000_000


def _write_csv(path: Path) -> None:
    settings = SimulatorSettings(rate_hz=1.0, seed=2, faults=(parse_fault("overheat@120s,rate=1"),))
    lines = ["timestamp,bearing_temp,ambient,current,load"]
    for f in generate_series(settings, ROWS):
        r = f.reported
        lines.append(
            f"{T0 + f.t:.0f},{r.bearing_temp:.2f},{r.ambient:.2f},{r.current:.2f},{f.load:.3f}"
        )
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture
def pty() -> Iterator[PtyDevice]:
    device = PtyDevice()
    device.open()
    yield device
    device.close()


def _agent_toml(csv: Path, port: str) -> str:
    return f"""
[[sources]]
type = "replay"
name = "pump"
path = "{csv}"
speed = 0

[[actions]]
type = "setpoint"
name = "pump-load"
port = "{port}"

[advisor]
enabled = true
output = "pump-load"
safe_value = 0.3

[advisor.limits.bearing_temp]
above = 75.0
margin = 2.0

[http]
port = 0
"""


def test_the_card_shows_the_advice_and_the_override_reaches_the_pump(
    tmp_path: Path, pty: PtyDevice, web: BrowserPage
) -> None:
    csv = tmp_path / "pump.csv"
    _write_csv(csv)
    assert pty.slave_path is not None
    with running_agent(config_for(tmp_path, _agent_toml(csv, pty.slave_path))) as agent:
        assert agent.http_url is not None and agent.advisor is not None
        wait_until(lambda: agent.samples >= 4 * ROWS, "the replay to finish")
        page = web.page
        page.goto(agent.http_url + "/?poll_ms=250")
        page.wait_for_selector("#advisor-card")
        page.wait_for_function("() => window.edgeAdvisor.updates > 0")
        text = page.inner_text("#advisor")
        status = agent.advisor.status()
        assert f"Recommended: {status['recommended']:.2f}" in text
        assert "on bearing_temp" in text and "acting on load via pump-load" in text
        pty.read_lines()  # what the advisor wrote so far
        page.fill("#advisor-value", "0.5")
        page.click("#advisor-hold")
        page.wait_for_function("() => window.edgeAdvisor.status?.override === 0.5")
        assert "Override: 0.50 by status page" in page.inner_text("#advisor")
        wait_until(lambda: b"load=0.5000" in pty.read_lines(), "the pump gets the override")
        page.fill("#advisor-value", "2")
        page.click("#advisor-hold")
        page.wait_for_function(
            "() => document.getElementById('advisor-note').textContent.includes('refused')"
        )
        assert "outside the bounds [0.15, 1.0]" in page.inner_text("#advisor-note")
        page.click("#advisor-release")
        page.wait_for_function("() => window.edgeAdvisor.status?.override === null")
        # The card sits inside the health row, inside the page's width.
        card = page.locator("#advisor-card").bounding_box()
        row = page.locator("section.health").bounding_box()
        assert card is not None and row is not None
        assert row["x"] <= card["x"] and card["x"] + card["width"] <= row["x"] + row["width"] + 1
        web.screenshot("advisor-card")
    # The only console line: Chromium's note of the refused override's 422.
    assert [e for e in web.errors if "status of 422" not in e] == []


def test_an_agent_without_an_advisor_shows_no_card(tmp_path: Path, web: BrowserPage) -> None:
    csv = tmp_path / "pump.csv"
    _write_csv(csv)
    toml = f'[[sources]]\ntype = "replay"\nname = "pump"\npath = "{csv}"\nspeed = 0\n'
    toml += "[http]\nport = 0\n"
    with running_agent(config_for(tmp_path, toml)) as agent:
        assert agent.http_url is not None
        page = web.page
        page.goto(agent.http_url + "/?poll_ms=250")
        page.wait_for_function("() => window.edgeStatus.updates > 1")
        assert page.locator("#advisor-card").count() == 0
        with httpx.Client(base_url=agent.http_url) as client:
            assert client.get("/twin/advisor").json() == {"configured": False}
            assert client.post("/twin/advisor/override", json={"value": 0.5}).status_code == 404
    assert web.errors == []
