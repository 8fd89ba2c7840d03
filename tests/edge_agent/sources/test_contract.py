"""The Source contract, run against every source plugin built through the registry."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Protocol

import pytest

from edge_agent.reading import Reading
from edge_agent.simulator import SimulatorSettings, serial_config_for
from edge_agent.simulator.modbus import has_socat, modbus_bus, th_transmitter
from edge_agent.sources.base import Source, SourceState
from edge_agent.sources.gpio import GpioSourceConfig
from edge_agent.sources.modbus.config import ModbusSourceConfig
from edge_agent.sources.onewire import OneWireSourceConfig
from edge_agent.sources.registry import SOURCES, build_source
from edge_agent.sources.replay import ReplaySource, ReplaySourceConfig
from edge_agent.sources.serial import SerialSource, SerialSourceConfig
from edge_agent.sources.tcp import TcpSourceConfig
from tests.conftest import require
from tests.edge_agent.simulator.harness import running_simulator
from tests.edge_agent.sources.test_tcp_source import Gateway


class Backend(Protocol):
    def __call__(self, tmp_path: Path) -> AbstractContextManager[Source]: ...


@contextmanager
def serial_backend(tmp_path: Path) -> Iterator[Source]:
    settings = SimulatorSettings(rate_hz=200, link=tmp_path / "dev")
    with running_simulator(settings):
        yield build_source(serial_config_for(settings, str(tmp_path / "dev")))


@contextmanager
def replay_backend(tmp_path: Path) -> Iterator[Source]:
    path = tmp_path / "data.csv"
    path.write_text(
        "timestamp,bearing_temp,vibration\n"
        + "".join(f"{1700000000 + i},{60 + i / 10},{2 + i / 100}\n" for i in range(50)),
        encoding="utf-8",
    )
    yield build_source(ReplaySourceConfig(type="replay", name="replay", path=path, speed=0))


@contextmanager
def modbus_backend(tmp_path: Path) -> Iterator[Source]:
    require(has_socat(), "socat is not installed (Debian package socat)")
    with modbus_bus(tmp_path, [th_transmitter(1)]) as bus:
        config = ModbusSourceConfig.model_validate(
            {
                "type": "modbus",
                "name": "modbus",
                "port": bus.client_path,
                "baudrate": 115200,
                "timeout_s": 0.3,
                "registers": [
                    {"channel": "ambient_temp", "kind": "input", "address": 0, "period_s": 0.01},
                    {"channel": "humidity", "kind": "input", "address": 1, "period_s": 0.01},
                ],
            }
        )
        yield build_source(config)


@contextmanager
def gpio_backend(tmp_path: Path) -> Iterator[Source]:
    config = GpioSourceConfig.model_validate(
        {
            "type": "gpio",
            "name": "gpio",
            "pin_factory": "mock",
            "sample_period_s": 0.01,
            "inputs": [
                {"channel": "door", "pin": 17},
                {"channel": "flow", "pin": 27, "kind": "pulse_rate"},
            ],
        }
    )
    yield build_source(config)


@contextmanager
def onewire_backend(tmp_path: Path) -> Iterator[Source]:
    sensor = tmp_path / "28-00000a1b2c3d"
    sensor.mkdir()
    (sensor / "w1_slave").write_text(
        "72 01 4b 46 7f ff 0e 10 57 : crc=57 YES\n72 01 4b 46 7f ff 0e 10 57 t=23125\n"
    )
    config = OneWireSourceConfig.model_validate(
        {
            "type": "onewire",
            "name": "w1",
            "devices_dir": str(tmp_path),
            "period_s": 0.01,
            "sensors": [{"id": "28-00000a1b2c3d", "channel": "tank_temp"}],
        }
    )
    yield build_source(config)


@contextmanager
def tcp_backend(tmp_path: Path) -> Iterator[Source]:
    gateway = Gateway(lambda n: f"seq={n} temp=21.5\n".encode())
    try:
        config = TcpSourceConfig.model_validate(
            {
                "type": "tcp",
                "name": "gw",
                "host": "127.0.0.1",
                "port": gateway.port,
                "format": "kv",
                "fields": {"seq": {"channel": "seq"}, "temp": {"channel": "temp"}},
            }
        )
        yield build_source(config)
    finally:
        gateway.close()


BACKENDS: dict[str, Backend] = {
    "serial": serial_backend,
    "replay": replay_backend,
    "modbus": modbus_backend,
    "gpio": gpio_backend,
    "onewire": onewire_backend,
    "tcp": tcp_backend,
}


def test_every_registered_source_runs_this_contract() -> None:
    assert sorted(BACKENDS) == sorted(SOURCES.by_key), "add the new source's backend above"


async def take(source: Source, n: int) -> list[Reading]:
    out: list[Reading] = []
    stream = source.stream()
    try:
        async for reading in stream:
            out.append(reading)
            if len(out) >= n:
                break
    finally:
        await stream.aclose()  # type: ignore[attr-defined]
    return out


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_stream_yields_readings_of_its_channels(backend: str, tmp_path: Path) -> None:
    with BACKENDS[backend](tmp_path) as source:
        assert source.health.state is SourceState.STARTING
        readings = asyncio.run(asyncio.wait_for(take(source, 20), 15.0))
    assert len(readings) == 20
    assert all(isinstance(r, Reading) for r in readings)
    assert {r.channel for r in readings} <= set(source.channels())
    stamps = [r.ts for r in readings]
    assert stamps == sorted(stamps)
    assert source.health.state in {SourceState.CONNECTED, SourceState.FINISHED}
    assert source.health.last_reading_ts is not None
    assert source.health.since > 0


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_health_counters_are_preseeded_integers(backend: str, tmp_path: Path) -> None:
    with BACKENDS[backend](tmp_path) as source:
        counters = source.health.counters
        assert isinstance(counters, Counter)
        assert counters and all(v == 0 for v in counters.values())
        keys = set(counters)
        asyncio.run(asyncio.wait_for(take(source, 5), 15.0))
    assert set(source.health.counters) == keys  # counted, never a key added later


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_stream_can_be_restarted_after_closing(backend: str, tmp_path: Path) -> None:
    with BACKENDS[backend](tmp_path) as source:
        first = asyncio.run(asyncio.wait_for(take(source, 3), 15.0))
        second = asyncio.run(asyncio.wait_for(take(source, 3), 15.0))
    assert len(first) == len(second) == 3


@pytest.mark.parametrize(
    ("config", "kind"),
    [
        (
            SerialSourceConfig.model_validate(
                {
                    "type": "serial",
                    "name": "s",
                    "port": "/dev/serial/by-id/usb-nothing-here",
                    "format": "kv",
                    "fields": {"a": {"channel": "a"}},
                }
            ),
            SerialSource,
        ),
        (ReplaySourceConfig(type="replay", name="r", path=Path("/nonexistent.csv")), ReplaySource),
    ],
)
def test_registry_builds_without_touching_the_device(
    config: SerialSourceConfig | ReplaySourceConfig, kind: type
) -> None:
    source = build_source(config)
    assert isinstance(source, kind)
    assert source.name == config.name
    assert source.health.state is SourceState.STARTING


def test_registry_rejects_an_unknown_config_type() -> None:
    with pytest.raises(TypeError, match="no source plugin"):
        build_source(object())  # type: ignore[arg-type]
