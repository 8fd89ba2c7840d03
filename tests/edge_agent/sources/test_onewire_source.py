"""DS18B20 sensors through a fake w1 sysfs tree written in the kernel's format."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge_agent.sources.base import SourceState
from edge_agent.sources.onewire import (
    OneWireSource,
    OneWireSourceConfig,
    W1Outcome,
    parse_w1_slave,
    sensor_counter,
)

GOOD = "72 01 4b 46 7f ff 0e 10 57 : crc=57 YES\n72 01 4b 46 7f ff 0e 10 57 t=23125\n"
BAD_CRC = "72 01 4b 46 7f ff 0e 10 57 : crc=c3 NO\n72 01 4b 46 7f ff 0e 10 57 t=23125\n"
POWER_ON = "50 05 4b 46 7f ff 0c 10 1c : crc=1c YES\n50 05 4b 46 7f ff 0c 10 1c t=85000\n"
NEGATIVE = "5e ff 4b 46 7f ff 02 10 5a : crc=5a YES\n5e ff 4b 46 7f ff 02 10 5a t=-10125\n"

TANK = "28-00000a1b2c3d"
PIPE = "28-0316a2795aff"


def w1_tree(root: Path, files: dict[str, str]) -> Path:
    """The kernel's layout: one folder per device holding w1_slave (and a bus master)."""
    (root / "w1_bus_master1").mkdir(parents=True, exist_ok=True)
    for device, text in files.items():
        (root / device).mkdir(exist_ok=True)
        (root / device / "w1_slave").write_text(text)
    return root


def onewire_config(root: Path) -> OneWireSourceConfig:
    return OneWireSourceConfig.model_validate(
        {
            "type": "onewire",
            "name": "w1",
            "devices_dir": str(root),
            "period_s": 0.02,
            "sensors": [
                {"id": TANK, "channel": "tank_temp"},
                {"id": PIPE, "channel": "pipe_temp", "offset": -0.5},
            ],
        }
    )


@pytest.mark.parametrize(
    ("text", "outcome", "celsius"),
    [
        (GOOD, W1Outcome.OK, 23.125),
        (NEGATIVE, W1Outcome.OK, -10.125),
        (BAD_CRC, W1Outcome.CRC_ERROR, None),
        (POWER_ON, W1Outcome.POWER_ON_RESET, None),
        ("", W1Outcome.GARBAGE, None),
        (GOOD.splitlines()[0] + "\n", W1Outcome.GARBAGE, None),  # cut short
        (GOOD.replace("t=23125", "t=23x25"), W1Outcome.GARBAGE, None),
        (GOOD.replace("t=23125", ""), W1Outcome.GARBAGE, None),
    ],
)
def test_parse_w1_slave(text: str, outcome: W1Outcome, celsius: float | None) -> None:
    result = parse_w1_slave(text)
    assert result.outcome is outcome
    assert result.celsius == celsius


@given(st.text(max_size=200))
def test_parse_never_raises(text: str) -> None:
    assert isinstance(parse_w1_slave(text).outcome, W1Outcome)


def test_reads_sensors_and_rejects_crc_failures(tmp_path: Path) -> None:
    root = w1_tree(tmp_path, {TANK: GOOD, PIPE: BAD_CRC})
    source = OneWireSource(onewire_config(root))
    first = source.read_round()
    assert [(r.channel, r.value) for r in first] == [("tank_temp", 23.125)]
    counters = source.health.counters
    assert counters[sensor_counter("pipe_temp", "crc_errors")] == 1
    assert counters["crc_errors"] == 1
    assert "crc=c3 NO" in (source.health.last_error or "")
    (root / PIPE / "w1_slave").write_text(NEGATIVE)
    second = source.read_round()
    assert [(r.channel, r.value) for r in second] == [("tank_temp", 23.125), ("pipe_temp", -10.625)]
    assert counters[sensor_counter("pipe_temp", "reads_ok")] == 1
    assert source.health.state is SourceState.CONNECTED


def test_power_on_value_and_unplugged_sensor_are_counted(tmp_path: Path) -> None:
    root = w1_tree(tmp_path, {TANK: POWER_ON})
    source = OneWireSource(onewire_config(root))
    assert source.read_round() == []
    counters = source.health.counters
    assert counters[sensor_counter("tank_temp", "power_on_resets")] == 1
    assert counters[sensor_counter("pipe_temp", "reads_missing")] == 1
    assert source.health.state is SourceState.DISCONNECTED  # no sensor read this round


def test_streams_on_its_period_and_follows_a_sensor_that_comes_and_goes(tmp_path: Path) -> None:
    root = w1_tree(tmp_path, {TANK: GOOD, PIPE: GOOD})
    source = OneWireSource(onewire_config(root))
    counters = source.health.counters

    async def main() -> list[float]:
        seen: list[float] = []
        async with asyncio.timeout(15.0):
            async for reading in source.stream():
                if reading.channel == "pipe_temp":
                    seen.append(reading.value)
                    if len(seen) == 2:
                        (root / PIPE / "w1_slave").unlink()  # unplugged
                    if len(seen) >= 3:
                        break
                elif counters[sensor_counter("pipe_temp", "reads_missing")] >= 2:
                    (root / PIPE / "w1_slave").write_text(NEGATIVE)  # back
        return seen

    values = asyncio.run(main())
    assert values[:2] == [22.625, 22.625] and values[2] == -10.625
    assert counters[sensor_counter("pipe_temp", "reads_missing")] >= 2
    assert counters[sensor_counter("tank_temp", "reads_ok")] >= 3


def test_config_rejects_a_malformed_id() -> None:
    with pytest.raises(ValueError, match=r"sensors\.0\.id"):
        OneWireSourceConfig.model_validate(
            {"type": "onewire", "name": "w", "sensors": [{"id": "28-XYZ", "channel": "t"}]}
        )
