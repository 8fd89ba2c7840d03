"""The modbus_setpoint action against the simulator's pump, a real pymodbus server, over
TCP and over RTU on a socat pty pair (sharing the bus with a Modbus source's reads): the
register written and read back, the pump's load setpoint changing, exception answers
named with the device, register and exception, delivery health, the alarm interlock,
and config errors. Timeouts are safety nets against hangs, never assertions."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from edge_agent.actions.errors import ControlWriteFailed
from edge_agent.actions.modbus_setpoint import (
    ModbusSetpointAction,
    ModbusSetpointConfig,
    link_buses,
)
from edge_agent.alarms.engine import AlarmEngine
from edge_agent.config import AgentConfig
from edge_agent.reading import Reading
from edge_agent.simulator import SimulatorSettings
from edge_agent.simulator.modbus import has_socat, modbus_bus, modbus_tcp_gateway
from edge_agent.simulator.modbus_pump import (
    INPUT_REGISTERS,
    SETPOINT_REGISTER,
    PumpSlave,
    run_modbus_pump,
)
from edge_agent.sources.modbus.config import ModbusSourceConfig
from edge_agent.sources.modbus.source import ModbusSource
from edgetwin_common.testing import wait_until_async
from tests.conftest import require

SAFETY_S = 20.0
LOAD = {"address": SETPOINT_REGISTER, "scale": 0.001, "retries": 1, "timeout_s": 0.5}


def _config(**values: Any) -> ModbusSetpointConfig:
    return ModbusSetpointConfig.model_validate(
        {"type": "modbus_setpoint", "name": "pump-load", **values}
    )


@pytest.fixture
def pump() -> Iterator[tuple[PumpSlave, int]]:
    """The simulated pump stepping at 20 Hz, served over Modbus TCP; (slave, port)."""
    slave = PumpSlave(1)
    stop = threading.Event()
    settings = SimulatorSettings(rate_hz=20.0, seed=5)
    stepper = threading.Thread(target=run_modbus_pump, args=(settings, slave, stop))
    stepper.start()
    try:
        with modbus_tcp_gateway([slave.device]) as port:
            yield slave, port
    finally:
        stop.set()
        stepper.join(SAFETY_S)


def _run(test: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(test(), SAFETY_S))


def test_over_tcp_the_value_reaches_the_register_and_the_pumps_setpoint(
    pump: tuple[PumpSlave, int],
) -> None:
    slave, port = pump
    action = ModbusSetpointAction(_config(transport="tcp", host="127.0.0.1", tcp_port=port, **LOAD))

    async def test() -> None:
        await action.start()
        try:
            action.write(0.6)
            await wait_until_async(lambda: action.last_value == 0.6, "the write is answered")
            await wait_until_async(lambda: slave.command.setpoint == 0.6, "the pump takes it")
            action.write(0.42)
            await wait_until_async(lambda: action.last_value == 0.42, "the second write")
            await wait_until_async(lambda: slave.command.setpoint == 0.42, "the pump takes it")
        finally:
            await action.stop()

    _run(test)
    assert slave.accepted == 2 and slave.rejected == 0
    assert [sp for _, sp in slave.command.history][-2:] == [0.6, 0.42]
    assert action.counters["written"] == 2 and action.counters["failed"] == 0
    assert action.health.last_success is not None and not action.health.is_failing
    assert action.pending == 0


def test_function_6_writes_a_single_register_zero_included(pump: tuple[PumpSlave, int]) -> None:
    slave, port = pump
    config = _config(transport="tcp", host="127.0.0.1", tcp_port=port, function=6, **LOAD)
    action = ModbusSetpointAction(config)

    async def test() -> None:
        await action.start()
        try:
            for value in (0.35, 0.0):
                action.write(value)
                await wait_until_async(lambda v=value: action.last_value == v, "written")
        finally:
            await action.stop()

    _run(test)
    assert action.counters["written"] == 2 and slave.accepted == 2


def test_an_exception_answer_is_named_and_takes_delivery_health_down(
    pump: tuple[PumpSlave, int],
) -> None:
    slave, port = pump
    bus = {"transport": "tcp", "host": "127.0.0.1", "tcp_port": port, "retries": 2}
    # The device takes 0..1000: 1.5 is 1500 in the register (illegal data value).
    wide = ModbusSetpointAction(_config(**bus, address=SETPOINT_REGISTER, scale=0.001, maximum=2))
    wrong = ModbusSetpointAction(_config(**bus, address=SETPOINT_REGISTER + 1, scale=0.001))

    async def test() -> None:
        for action in (wide, wrong):
            await action.start()
        try:
            wide.write(1.5)
            wrong.write(0.5)
            await wait_until_async(lambda: wide.counters["failed"] and wrong.counters["failed"])
            # A refused value is final; the right one goes through afterwards.
            wide.write(0.7)
            await wait_until_async(lambda: wide.last_value == 0.7, "the next write")
            await wait_until_async(lambda: slave.command.setpoint == 0.7, "the pump takes it")
        finally:
            for action in (wide, wrong):
                await action.stop()

    _run(test)
    bus_name = f"127.0.0.1:{port}"
    assert wide.health.last_error == (
        f"pump-load: unit 1 holding register 16 (uint16) on {bus_name}: "
        "Modbus exception 3 (illegal data value)"
    )
    assert wrong.health.last_error == (
        f"pump-load: unit 1 holding register 17 (uint16) on {bus_name}: "
        "Modbus exception 2 (illegal data address)"
    )
    assert wrong.health.is_failing and not wide.health.is_failing
    # Exception answers are never retried (retries=2 is for silence).
    assert wide.counters["retried"] == 0 and wrong.counters["retried"] == 0
    # (register 17 is outside the table: the server answers exception 2 itself)
    assert slave.rejected == 1 and slave.command.setpoint == 0.7


def test_a_silent_device_is_retried_then_fails_without_blocking_the_loop() -> None:
    config = _config(
        transport="tcp", host="127.0.0.1", tcp_port=9, retries=2, timeout_s=0.2,
        backoff={"initial_s": 0.01, "max_s": 0.02}, **{"address": 16},
    )  # fmt: skip
    action = ModbusSetpointAction(config)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.005)

    async def test() -> None:
        await action.start()
        beat = asyncio.create_task(ticker())
        try:
            action.write(0.5)
            await wait_until_async(lambda: action.counters["failed"] == 1, "the final failure")
        finally:
            beat.cancel()
            await action.stop()

    _run(test)
    assert action.counters["retried"] == 2  # two retries heard of, then final
    assert action.health.is_failing and "cannot open 127.0.0.1:9" in str(action.health.last_error)
    assert ticks > 1  # the loop ran while the bus thread tried


def test_refused_values_and_the_alarm_interlock(pump: tuple[PumpSlave, int]) -> None:
    slave, port = pump
    config = _config(transport="tcp", host="127.0.0.1", tcp_port=port, safe_value=0.3, **LOAD)
    action = ModbusSetpointAction(config)
    agent = AgentConfig.model_validate(
        {
            "actions": [config.model_dump(mode="json")],
            "alarms": [{"name": "bearing-very-hot", "channel": "bearing_temp",
                        "type": "value_above", "set": 80.0, "clear": 78.0,
                        "actions": ["pump-load"]}],
        }
    )  # fmt: skip
    engine = AlarmEngine(agent.alarms, (1,), lambda e: None, {"pump-load": action})

    async def test() -> None:
        await action.start()
        try:
            with pytest.raises(ControlWriteFailed, match=r"1.2 is outside \[0.0, 1.0\]"):
                action.write(1.2)
            with pytest.raises(ControlWriteFailed, match="outside"):
                action.write(float("nan"))
            engine.on_sample("bearing_temp", 1.0, 85.0)
            await wait_until_async(lambda: action.last_value == 0.3, "the safe value")
            with pytest.raises(ControlWriteFailed, match=r"held at the safe value 0\.3 by alarm"):
                action.write(0.9)
            engine.on_sample("bearing_temp", 2.0, 70.0)
            action.write(0.9)
            await wait_until_async(lambda: action.last_value == 0.9, "released")
            await wait_until_async(lambda: slave.command.setpoint == 0.9, "the pump takes it")
        finally:
            await action.stop()

    _run(test)
    assert action.counters["refused"] == 2 and action.counters["interlocked"] == 1
    assert slave.command.setpoint == 0.9


def test_over_rtu_it_shares_the_bus_with_the_modbus_source(tmp_path: Path) -> None:
    require(has_socat(), "socat is not installed (Debian package socat)")
    slave = PumpSlave(1)
    stop = threading.Event()
    stepper = threading.Thread(
        target=run_modbus_pump, args=(SimulatorSettings(rate_hz=20.0, seed=2), slave, stop)
    )
    stepper.start()
    readings: list[Reading] = []
    try:
        with modbus_bus(tmp_path, [slave.device]) as bus:
            source = ModbusSource(_pump_source(bus.client_path))
            action = ModbusSetpointAction(_config(source="pump-bus", **LOAD))
            link_buses({"pump-load": action}, [source])

            async def test() -> None:
                await action.start()
                async for reading in source.stream():
                    readings.append(reading)
                    if len(readings) == 50:
                        action.write(0.55)
                    taken = action.last_value == 0.55 and slave.command.setpoint == 0.55
                    if taken and len(readings) > 200:
                        break
                await action.stop()

            _run(test)
    finally:
        stop.set()
        stepper.join(SAFETY_S)
    counters = source.health.counters
    # The write went between the polls: no answer was taken for another's.
    assert counters["answers_mismatched"] == 0 and counters["timeouts"] == 0
    assert counters["crc_errors"] == 0
    assert action.counters["written"] == 1 and not action.health.is_failing
    loads = [r.value for r in readings if r.channel == "load"]
    assert loads and all(0.15 <= v <= 1.0 for v in loads)
    assert {r.channel for r in readings} == set(INPUT_REGISTERS)


def _pump_source(port: str) -> ModbusSourceConfig:
    registers = [
        {"channel": channel, "kind": "input", "address": address,
         "data_type": kind.value, "scale": scale, "period_s": 0.02}
        for channel, (address, kind, scale) in INPUT_REGISTERS.items()
    ]  # fmt: skip
    return ModbusSourceConfig.model_validate(
        {"type": "modbus", "name": "pump-bus", "port": port, "baudrate": 115200,
         "timeout_s": 0.3, "registers": registers}
    )  # fmt: skip


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"address": 70000, "port": "/dev/ttyUSB0"}, "less than or equal to 65535"),
        ({"address": 1, "port": "/dev/ttyUSB0", "data_type": "uint128"}, "data_type"),
        ({"address": 1, "port": "/dev/ttyUSB0", "scale": 0}, "scale must be a finite"),
        ({"address": 1, "port": "/dev/ttyUSB0", "data_type": "bool"}, "is a coil"),
        ({"address": 1}, 'transport "rtu" needs port'),
        (
            {"address": 1, "port": "/dev/ttyUSB0", "function": 6, "data_type": "float32"},
            "function 6 writes one register: float32 needs 16",
        ),
        ({"address": 1, "transport": "tcp"}, 'transport "tcp" needs host'),
        ({"address": 1, "source": "bus", "port": "/dev/ttyUSB0"}, "owns the bus: drop port"),
        (
            {"address": 1, "port": "/dev/ttyUSB0", "scale": 0.00001, "data_type": "int16"},
            "maximum: 1.0 is 100000 in the register",
        ),
        (
            {"address": 1, "port": "/dev/ttyUSB0", "minimum": -1, "maximum": 1},
            "minimum: -1.0 is -1 in the register, which does not fit uint16",
        ),
    ],
)
def test_config_errors_are_named(values: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        _config(**values)


def test_the_agent_config_names_a_second_master_on_a_sources_port() -> None:
    source = _pump_source("/dev/ttyUSB0").model_dump(mode="json")
    action = {"type": "modbus_setpoint", "name": "pump-load", "address": 16}
    with pytest.raises(ValidationError, match=r"actions.0.port: /dev/ttyUSB0 is the bus of"):
        AgentConfig.model_validate(
            {"sources": [source], "actions": [action | {"port": "/dev/ttyUSB0"}]}
        )
    with pytest.raises(ValidationError, match=r"actions.0.source: 'nope' is not a Modbus source"):
        AgentConfig.model_validate({"sources": [source], "actions": [action | {"source": "nope"}]})
    AgentConfig.model_validate({"sources": [source], "actions": [action | {"source": "pump-bus"}]})
