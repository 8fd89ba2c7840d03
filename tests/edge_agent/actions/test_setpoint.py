"""The setpoint action on a real pty (the simulator's device side reads what it writes):
the line it writes, its range, the alarm interlock through the real alarm engine, and a
port that vanishes and comes back."""

from __future__ import annotations

import asyncio

import pytest

from edge_agent.actions.errors import ControlWriteFailed
from edge_agent.actions.setpoint import SetpointAction, SetpointActionConfig
from edge_agent.alarms.engine import AlarmEngine
from edge_agent.config import AgentConfig
from edge_agent.simulator.command import LoadCommand
from edge_agent.simulator.device import PtyDevice
from tests.edge_agent.simulator.harness import running_simulator  # noqa: F401  (pty check)


def _action(port: str, **extra: object) -> SetpointAction:
    config = SetpointActionConfig.model_validate(
        {"type": "setpoint", "name": "pump-load", "port": port, **extra}
    )
    return SetpointAction(config)


def test_it_writes_a_command_line_the_device_reads_back() -> None:
    device = PtyDevice()
    path = device.open()
    action = _action(path)
    try:
        action.write(0.62)
        action.write(0.5)
        lines = device.read_lines()
    finally:
        asyncio.run(action.stop())
        device.close()
    assert lines == [b"load=0.6200", b"load=0.5000"]
    command = LoadCommand()
    assert all(command.feed(line) for line in lines)
    assert command.take(0) == 0.5
    assert action.counters["written"] == 2 and action.last_value == 0.5


def test_values_outside_the_devices_range_are_refused_not_clipped() -> None:
    action = _action("/nonexistent/port", minimum=0.1, maximum=0.9)
    with pytest.raises(ControlWriteFailed, match=r"0.95 is outside \[0.1, 0.9\]"):
        action.write(0.95)
    with pytest.raises(ValueError, match="safe_value"):
        _action("/dev/null", safe_value=2.0)


def test_an_alarm_naming_it_holds_the_safe_value_until_it_clears() -> None:
    device = PtyDevice()
    path = device.open()
    action = _action(path, safe_value=0.3)
    config = AgentConfig.model_validate(
        {
            "actions": [{"type": "setpoint", "name": "pump-load", "port": path}],
            "alarms": [{"name": "bearing-very-hot", "channel": "bearing_temp",
                        "type": "value_above", "set": 85.0, "clear": 80.0,
                        "actions": ["pump-load"]}],
        }
    )  # fmt: skip
    engine = AlarmEngine(config.alarms, (1,), lambda event: None, {"pump-load": action})
    try:
        action.write(0.9)
        engine.on_sample("bearing_temp", 1.0, 86.0)
        assert action.is_interlocked
        with pytest.raises(ControlWriteFailed, match=r"held at the safe value 0\.3"):
            action.write(0.8)
        engine.on_sample("bearing_temp", 2.0, 79.0)
        assert not action.is_interlocked
        action.write(0.7)
        lines = device.read_lines()
    finally:
        asyncio.run(action.stop())
        device.close()
    assert lines == [b"load=0.9000", b"load=0.3000", b"load=0.7000"]
    assert action.counters["interlocked"] == 1


def test_a_vanished_port_is_an_error_and_the_next_write_reopens_it() -> None:
    device = PtyDevice()
    path = device.open()
    action = _action(path)
    action.write(0.5)
    device.close()  # the device is unplugged: the path is gone
    with pytest.raises(ControlWriteFailed, match="writing to"):
        action.write(0.6)
        action.write(0.6)  # (the first write may still land in the closed tty's buffer)
    again = PtyDevice()
    again_path = again.open()
    try:
        action.config = action.config.model_copy(update={"port": again_path})
        action.write(0.4)
        assert again.read_lines() == [b"load=0.4000"]
    finally:
        asyncio.run(action.stop())
        again.close()
    assert action.counters["failed"] >= 1
