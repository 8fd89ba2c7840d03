"""The Modbus source against a real pymodbus RTU server on a socat pty pair (and a TCP
gateway), read through pymodbus' client and pyserial. Timeouts are safety nets against
hangs, never assertions."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from edge_agent.reading import Reading
from edge_agent.simulator.modbus import (
    energy_meter,
    has_socat,
    modbus_bus,
    modbus_tcp_gateway,
    th_transmitter,
)
from edge_agent.sources.base import SourceState
from edge_agent.sources.errors import SourceBusy
from edge_agent.sources.modbus.config import ModbusSourceConfig
from edge_agent.sources.modbus.source import COUNTERS, ModbusSource, register_counter
from tests.conftest import require

require(has_socat(), "socat is not installed (Debian package socat)", module=True)

SAFETY_S = 20.0
FAST = {
    "timeout_s": 0.3,
    "backoff": {"initial_s": 0.05, "max_s": 0.2},
    "offline_after_failures": 2,
}

TH_REGISTERS: list[dict[str, Any]] = [
    {"channel": "ambient_temp", "slave": 1, "kind": "input", "address": 0,
     "data_type": "int16", "scale": 0.1, "period_s": 0.02},
    {"channel": "humidity", "slave": 1, "kind": "input", "address": 1, "scale": 0.1,
     "period_s": 0.02},
]  # fmt: skip

METER_REGISTERS: list[dict[str, Any]] = [
    {"channel": "voltage", "slave": 2, "kind": "holding", "address": 0,
     "data_type": "float32", "word_order": "little", "period_s": 0.02},
    {"channel": "current", "slave": 2, "kind": "holding", "address": 2,
     "data_type": "float32", "word_order": "little", "period_s": 0.02},
    {"channel": "power_kw", "slave": 2, "kind": "holding", "address": 4,
     "data_type": "float32", "word_order": "little", "scale": 0.001, "period_s": 0.02},
    {"channel": "energy_kwh", "slave": 2, "kind": "holding", "address": 16,
     "data_type": "uint32", "scale": 0.001, "period_s": 0.05},
    {"channel": "relay", "slave": 2, "kind": "coil", "address": 0, "data_type": "bool",
     "period_s": 0.05},
    {"channel": "tamper", "slave": 2, "kind": "discrete_input", "address": 0,
     "data_type": "bool", "period_s": 0.05},
]  # fmt: skip


def rtu_config(port: str, registers: list[dict[str, Any]], **extra: Any) -> ModbusSourceConfig:
    return ModbusSourceConfig.model_validate(
        {
            "type": "modbus",
            "name": "bus",
            "port": port,
            "baudrate": 115200,
            "registers": registers,
            **FAST,
            **extra,
        }
    )


async def collect(
    source: ModbusSource,
    until: Callable[[list[Reading]], bool],
    on_reading: Callable[[list[Reading]], None] | None = None,
) -> list[Reading]:
    readings: list[Reading] = []

    async def consume() -> None:
        async for reading in source.stream():
            readings.append(reading)
            if on_reading is not None:
                on_reading(readings)
            if until(readings):
                return

    await asyncio.wait_for(consume(), SAFETY_S)
    return readings


def latest(readings: list[Reading]) -> dict[str, float]:
    return {r.channel: r.value for r in readings}


def run_until(source: ModbusSource, condition: Callable[[], bool]) -> list[Reading]:
    """Stream until ``condition()`` holds (checked on each reading and every 20 ms)."""

    async def main() -> list[Reading]:
        readings: list[Reading] = []

        async def consume() -> None:
            async for reading in source.stream():
                readings.append(reading)

        task = asyncio.create_task(consume())
        try:
            async with asyncio.timeout(SAFETY_S):
                while not condition():
                    await asyncio.sleep(0.02)
        finally:
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        return readings

    return asyncio.run(main())


def test_reads_a_transmitter_and_an_energy_meter_on_one_bus(tmp_path: Path) -> None:
    with modbus_bus(tmp_path, [th_transmitter(1), energy_meter(2)]) as bus:
        source = ModbusSource(rtu_config(bus.client_path, TH_REGISTERS + METER_REGISTERS))
        wanted = {r["channel"] for r in TH_REGISTERS + METER_REGISTERS}
        readings = asyncio.run(collect(source, lambda rs: {r.channel for r in rs} >= wanted))
    values = latest(readings)
    assert values["ambient_temp"] == pytest.approx(21.5)
    assert values["humidity"] == pytest.approx(45.6)
    assert values["voltage"] == pytest.approx(230.1, rel=1e-6)
    assert values["current"] == pytest.approx(4.25)
    assert values["power_kw"] == pytest.approx(-0.9775)
    assert values["energy_kwh"] == pytest.approx(123456.789)
    assert values["relay"] == 0.0 and values["tamper"] == 0.0
    assert source.health.state is SourceState.CONNECTED
    counters = source.health.counters
    assert counters[register_counter("voltage", "reads")] >= 1
    assert counters["timeouts"] == counters["crc_errors"] == counters["exceptions"] == 0
    # Adjacent registers of one device and period share a request: 5 requests per round
    # (T/RH; V/I/P; energy; coil; discrete input), not 8.
    assert len(source.blocks) == 5


def test_serves_live_values_on_each_request(tmp_path: Path) -> None:
    temperatures = iter(t / 2 for t in range(40, 10_000))
    current = [20.0]

    def temperature() -> float:
        return current[0]

    def step(readings: list[Reading]) -> None:
        current[0] = next(temperatures)

    with modbus_bus(tmp_path, [th_transmitter(1, temperature)]) as bus:
        source = ModbusSource(rtu_config(bus.client_path, TH_REGISTERS[:1]))
        readings = asyncio.run(collect(source, lambda rs: len(rs) >= 10, on_reading=step))
    values = [r.value for r in readings]
    assert len(set(values)) >= 5  # changing, as served
    assert values == sorted(values)
    stamps = [r.ts for r in readings]
    assert stamps == sorted(stamps)


def test_exception_responses_are_counted_per_register(tmp_path: Path) -> None:
    registers = [*TH_REGISTERS, {"channel": "nowhere", "slave": 1, "kind": "input",
                                 "address": 7, "period_s": 0.02}]  # fmt: skip
    with modbus_bus(tmp_path, [th_transmitter(1)]) as bus:
        source = ModbusSource(rtu_config(bus.client_path, registers))
        counters = source.health.counters
        readings = run_until(
            source, lambda: counters[register_counter("nowhere", "exceptions")] >= 3
        )
    assert counters["exceptions"] >= 3
    assert counters[register_counter("ambient_temp", "exceptions")] == 0
    assert "exception 2 (illegal data address)" in (source.health.last_error or "")
    assert {"ambient_temp", "humidity"} <= {r.channel for r in readings}
    assert "nowhere" not in {r.channel for r in readings}
    # An exception is an answer: the device is there.
    assert source.health.state is SourceState.CONNECTED
    assert counters["devices_lost"] == 0


def test_crc_errors_are_counted_and_the_device_recovers(tmp_path: Path) -> None:
    with modbus_bus(tmp_path, [th_transmitter(1)]) as bus:
        source = ModbusSource(
            rtu_config(bus.client_path, TH_REGISTERS, offline_after_failures=50, timeout_s=1.0)
        )
        counters = source.health.counters
        seen_before: list[int] = []

        def fault_then_heal() -> bool:
            reads = counters[register_counter("ambient_temp", "reads")]
            if reads >= 2 and not seen_before:
                seen_before.append(reads)
                bus.devices[1].is_crc_broken = True
            if counters["crc_errors"] >= 3:
                bus.devices[1].is_crc_broken = False
                return reads >= seen_before[0] + 2
            return False

        run_until(source, fault_then_heal)
    assert counters["crc_errors"] >= 3
    assert counters[register_counter("ambient_temp", "crc_errors")] >= 3
    assert counters[register_counter("humidity", "crc_errors")] >= 3  # one request, both
    assert counters["timeouts"] == 0  # a spoilt answer is not a silent device


def test_a_device_absent_at_start_is_waited_for(tmp_path: Path) -> None:
    device = th_transmitter(1)
    device.is_silent = True
    with modbus_bus(tmp_path, [device]) as bus:
        source = ModbusSource(rtu_config(bus.client_path, TH_REGISTERS))
        counters = source.health.counters
        states: list[SourceState] = []

        def appear_later() -> bool:
            states.append(source.health.state)
            if counters["timeouts"] >= 4 and device.is_silent:
                assert source.health.state is SourceState.DISCONNECTED
                device.is_silent = False
            return counters[register_counter("ambient_temp", "reads")] >= 2

        run_until(source, appear_later)
    assert SourceState.DISCONNECTED in states
    assert "no device answers" in (source.health.last_error or "")
    assert source.health.state is SourceState.CONNECTED
    assert counters["reconnects"] >= 1  # the port was reopened while nobody answered


def test_a_device_vanishing_mid_run_goes_disconnected_and_comes_back(tmp_path: Path) -> None:
    device = th_transmitter(1)
    with modbus_bus(tmp_path, [device, energy_meter(2)]) as bus:
        source = ModbusSource(rtu_config(bus.client_path, TH_REGISTERS + METER_REGISTERS[:1]))
        counters = source.health.counters
        phase = ["run"]

        def vanish_and_return() -> bool:
            if phase[0] == "run" and counters[register_counter("ambient_temp", "reads")] >= 3:
                device.is_silent = True
                phase[0] = "gone"
            elif phase[0] == "gone" and counters["devices_lost"] >= 1:
                # The meter still answers: the source stays connected.
                assert source.health.state is SourceState.CONNECTED
                reads_when_gone[0] = counters[register_counter("ambient_temp", "reads")]
                device.is_silent = False
                phase[0] = "back"
            return phase[0] == "back" and counters["devices_recovered"] >= 1

        reads_when_gone = [0]
        run_until(source, vanish_and_return)
    assert counters[register_counter("ambient_temp", "timeouts")] >= 2
    assert counters[register_counter("voltage", "timeouts")] == 0
    assert "slave 1 input 0-1: no answer" in (source.health.last_error or "")


def test_the_bus_unplugged_and_replugged_reconnects(tmp_path: Path) -> None:
    with modbus_bus(tmp_path, [th_transmitter(1)]) as bus:
        source = ModbusSource(rtu_config(bus.client_path, TH_REGISTERS))
        counters = source.health.counters
        phase = ["run"]

        def unplug_and_replug() -> bool:
            if phase[0] == "run" and counters[register_counter("ambient_temp", "reads")] >= 2:
                bus.stop_server()
                bus.unplug()
                phase[0] = "unplugged"
            elif phase[0] == "unplugged" and counters["open_failures"] >= 2:
                assert source.health.state is SourceState.DISCONNECTED
                bus.plug()
                bus.start_server()
                phase[0] = "replugged"
                before[0] = counters[register_counter("ambient_temp", "reads")]
            return phase[0] == "replugged" and (
                counters[register_counter("ambient_temp", "reads")] >= before[0] + 2
            )

        before = [0]
        run_until(source, unplug_and_replug)
    assert counters["reconnects"] >= 1
    assert source.health.state is SourceState.CONNECTED


def test_a_missing_port_at_start_is_retried(tmp_path: Path) -> None:
    source = ModbusSource(rtu_config(str(tmp_path / "nothing-here"), TH_REGISTERS))
    counters = source.health.counters
    run_until(source, lambda: counters["open_failures"] >= 3)
    assert source.health.state is SourceState.DISCONNECTED
    assert "cannot open" in (source.health.last_error or "")


def test_modbus_tcp_gateway() -> None:
    registers = [{**r, "slave": 2} for r in METER_REGISTERS[:3]]
    with modbus_tcp_gateway([energy_meter(2)]) as port:
        config = ModbusSourceConfig.model_validate(
            {"type": "modbus", "name": "gw", "transport": "tcp", "host": "127.0.0.1",
             "tcp_port": port, "registers": registers, **FAST}
        )  # fmt: skip
        source = ModbusSource(config)
        readings = asyncio.run(collect(source, lambda rs: len(rs) >= 6))
    values = latest(readings)
    assert values["voltage"] == pytest.approx(230.1, rel=1e-6)
    assert values["current"] == pytest.approx(4.25)


def test_counters_are_preseeded_and_never_added(tmp_path: Path) -> None:
    source = ModbusSource(rtu_config(str(tmp_path / "x"), TH_REGISTERS))
    keys = set(source.health.counters)
    assert set(COUNTERS) <= keys
    assert register_counter("humidity", "crc_errors") in keys
    assert all(v == 0 for v in source.health.counters.values())
    run_until(source, lambda: source.health.counters["open_failures"] >= 1)
    assert set(source.health.counters) == keys


def test_one_consumer_at_a_time(tmp_path: Path) -> None:
    source = ModbusSource(rtu_config(str(tmp_path / "x"), TH_REGISTERS))

    async def main() -> None:
        first = source.stream()
        task = asyncio.ensure_future(first.__anext__())
        await asyncio.sleep(0.05)
        with pytest.raises(SourceBusy):
            await source.stream().__anext__()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await first.aclose()  # type: ignore[attr-defined]

    asyncio.run(main())
    assert not any(t.name == "source-bus" for t in threading.enumerate())
