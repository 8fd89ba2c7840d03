"""One agent, three kinds of industrial input and a GPIO alarm output: a Modbus RTU
transmitter (real pymodbus server on a socat pty pair), GPIO inputs and a lamp on
gpiozero's MockFactory (set as gpiozero's default pin factory, as its docs advise for
tests), a DS18B20 in a fake w1 sysfs tree. Real agent, real uvicorn, real SQLite."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from gpiozero import Device
from gpiozero.pins.mock import MockFactory

from edge_agent.actions.gpio_output import GpioOutputAction, OutputMode
from edge_agent.simulator.modbus import has_socat, modbus_bus, th_transmitter
from edgetwin_common.testing import wait_until
from tests.conftest import require
from tests.edge_agent.agent_harness import config_for, running_agent
from tests.edge_agent.sources.test_onewire_source import GOOD, TANK, w1_tree


@pytest.fixture
def mock_pins() -> Iterator[MockFactory]:
    previous = Device.pin_factory
    factory = MockFactory()
    Device.pin_factory = factory
    try:
        yield factory
    finally:
        factory.reset()
        Device.pin_factory = previous


def test_sources_health_alarms_and_lamp(tmp_path: Path, mock_pins: MockFactory) -> None:
    require(has_socat(), "socat is not installed (Debian package socat)")
    temperature = [21.0]
    transmitter = th_transmitter(1, lambda: temperature[0])
    w1 = w1_tree(tmp_path / "w1", {TANK: GOOD})
    with modbus_bus(tmp_path, [transmitter]) as bus:
        loaded = config_for(
            tmp_path,
            f"""
[http]
port = 0

[sync]
enabled = true
url = "http://127.0.0.1:9"
token = "t"
interval_s = 3600

[[sources]]
type = "modbus"
name = "rs485"
port = "{bus.client_path}"
baudrate = 115200
timeout_s = 0.2
offline_after_failures = 2
backoff = {{ initial_s = 0.05, max_s = 0.2 }}

[[sources.registers]]
channel = "ambient_temp"
kind = "input"
address = 0
data_type = "int16"
scale = 0.1
period_s = 0.05

[[sources.registers]]
channel = "humidity"
kind = "input"
address = 1
scale = 0.1
period_s = 0.05

[[sources]]
type = "gpio"
name = "io"
sample_period_s = 0.05

[[sources.inputs]]
channel = "door"
pin = 17

[[sources.inputs]]
channel = "flow"
pin = 27
kind = "pulse_rate"
scale = 0.1333

[[sources]]
type = "onewire"
name = "w1"
devices_dir = "{w1}"
period_s = 0.05

[[sources.sensors]]
id = "{TANK}"
channel = "tank_temp"

[[actions]]
type = "gpio"
name = "lamp"
pin = 22

[[alarms]]
name = "hot"
channel = "ambient_temp"
type = "value_above"
set = 30
clear = 28
actions = ["log", "lamp"]

[[alarms]]
name = "sensor-health"
channel = "*"
type = "health"
conditions = ["disconnected"]
actions = ["log", "lamp"]
""",
        )
        lamp_pin = mock_pins.pin(22)
        with running_agent(loaded) as agent:
            lamp = agent.actions["lamp"]
            assert isinstance(lamp, GpioOutputAction)
            client = httpx.Client(base_url=agent.http_url or "", timeout=10)

            def channels() -> dict[str, dict[str, object]]:
                return {c["name"]: c for c in client.get("/status").json()["channels"]}

            wanted = {"ambient_temp", "humidity", "door", "flow", "tank_temp"}
            # A channel is listed from its first reading; its last_ts once it is processed.
            wait_until(
                lambda: wanted <= {n for n, c in channels().items() if c["last_ts"] is not None},
                "a processed reading on every channel",
            )
            status = client.get("/status").json()
            sources = {s["name"]: s for s in status["sources"]}
            assert {n: s["state"] for n, s in sources.items()} == {
                "rs485": "connected",
                "io": "connected",
                "w1": "connected",
            }
            assert sources["rs485"]["counters"]["ambient_temp:reads"] >= 1
            assert sources["w1"]["counters"]["tank_temp:reads_ok"] >= 1
            # One time base: every source stamps the agent's clock, not a device's.
            stamps = [c["last_ts"] for c in channels().values()]
            assert max(stamps) - min(stamps) < 60  # type: ignore[operator]
            metrics = client.get("/metrics").text
            assert 'edge_source_connected{source="rs485"} 1.0' in metrics
            assert 'edge_source_events_total{event="ambient_temp:timeouts",source="rs485"}' in (
                metrics
            )
            assert agent.twin is not None
            reported = agent.twin.reported()
            assert set(reported.sources) == {"rs485", "io", "w1"}
            assert reported.sources["rs485"]["counters"]["humidity:crc_errors"] == 0

            temperature[0] = 35.0  # the value alarm sets the lamp blinking
            wait_until(lambda: lamp.mode is OutputMode.BLINK, "lamp blinking")
            hot = next(a for a in client.get("/alarms?active=true").json() if a["rule"] == "hot")
            client.post(f"/alarms/{hot['id']}/ack", json={"by": "test"})
            wait_until(lambda: lamp.mode is OutputMode.ON, "lamp steady after the ack")
            assert lamp_pin.state is True

            transmitter.is_silent = True  # the transmitter vanishes from the bus
            wait_until(
                lambda: any(
                    a["rule"] == "sensor-health" and a["channel"] == "ambient_temp"
                    for a in client.get("/alarms?active=true").json()
                ),
                "a sensor-health alarm",
            )
            rs485 = next(s for s in client.get("/status").json()["sources"] if s["name"] == "rs485")
            assert rs485["state"] == "disconnected"
            assert rs485["counters"]["ambient_temp:timeouts"] >= 2
            assert lamp.mode is OutputMode.BLINK  # a new, unacknowledged alarm

            transmitter.is_silent = False  # back: reconnected, the health alarm clears
            wait_until(
                lambda: (
                    not any(
                        a["rule"] == "sensor-health" and a["state"] != "cleared"
                        for a in client.get("/alarms?active=true").json()
                    )
                ),
                "the health alarm to clear",
            )
            client.close()
        # Stopped with alarms still open: the lamp is left in its safe state, off.
        assert lamp_pin.state is False
        assert not lamp.is_driving
