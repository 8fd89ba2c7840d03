"""The advisor writing through the modbus_setpoint action to the simulated pump's
holding register (a real pymodbus server over TCP): the pump's load setpoint follows,
and a write the device refuses (an exception answer) takes the action's health down and
the advisor to its safe value, with the fallback alarm saying why."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from itertools import islice

import pytest

from edge_agent.actions.modbus_setpoint import ModbusSetpointAction, ModbusSetpointConfig
from edge_agent.alarms.engine import AlarmEngine
from edge_agent.alarms.model import AlarmEvent, AlarmEventKind
from edge_agent.simulator import SimulatorSettings, iter_frames
from edge_agent.simulator.modbus import modbus_tcp_gateway
from edge_agent.simulator.modbus_pump import SETPOINT_REGISTER, PumpSlave, run_modbus_pump
from edge_agent.simulator.observer import PumpObserver
from edge_agent.twin.advisor.advisor import FALLBACK_ALARM, Advisor
from edge_agent.twin.advisor.closedloop import pump_advisor_config
from edge_agent.twin.advisor.errors import PredictionFailed
from edge_agent.twin.advisor.guards import Verdict
from edgetwin_common.testing import wait_until_async

SAFETY_S = 20.0


@pytest.fixture
def pump() -> Iterator[tuple[PumpSlave, int]]:
    slave = PumpSlave(1)
    stop = threading.Event()
    settings = SimulatorSettings(rate_hz=20.0, seed=4)
    stepper = threading.Thread(target=run_modbus_pump, args=(settings, slave, stop))
    stepper.start()
    try:
        with modbus_tcp_gateway([slave.device]) as port:
            yield slave, port
    finally:
        stop.set()
        stepper.join(SAFETY_S)


def test_a_refused_write_sends_the_advisor_to_its_safe_value(pump: tuple[PumpSlave, int]) -> None:
    slave, port = pump
    # The drive takes 0..1000 in its register; this action maps 1.0 to 1250, so any value
    # above 0.8 is refused by the device (exception 3): a range the config got wrong.
    action = ModbusSetpointAction(
        ModbusSetpointConfig.model_validate(
            {"type": "modbus_setpoint", "name": "pump-load", "transport": "tcp",
             "host": "127.0.0.1", "tcp_port": port, "address": SETPOINT_REGISTER,
             "scale": 0.0008}
        )
    )  # fmt: skip
    events: list[AlarmEvent] = []
    engine = AlarmEngine([], (1,), events.append, {})
    config = pump_advisor_config()
    observer = PumpObserver(period_s=config.step_s, failure=PredictionFailed)
    advisor = Advisor(config, observer, action, engine)
    frames = list(islice(iter_frames(SimulatorSettings(rate_hz=1.0, seed=4)), 400))

    def feed(start: int, end: int) -> None:
        for frame in frames[start:end]:
            values = frame.reported.as_dict() | {"load": frame.load}
            for channel in ("bearing_temp", "ambient", "current", "load"):
                observer.observe(channel, frame.t, values[channel])
                advisor.observe(channel, frame.t)

    async def test() -> None:
        await action.start()
        try:
            feed(0, 200)
            first = advisor.step(200.0)
            assert first.decision.value is not None and first.decision.value > 0.8
            await wait_until_async(lambda: action.counters["failed"] == 1, "the refusal")
            feed(200, 210)
            fallback = advisor.step(210.0)
            assert fallback.decision.verdict is Verdict.SAFE
            await wait_until_async(lambda: action.last_value == 0.3, "the safe value written")
            await wait_until_async(lambda: slave.command.setpoint == 0.375, "the pump takes it")
            feed(210, 250)
            assert advisor.step(250.0).failure is None  # a write went through: recovered
        finally:
            await action.stop()

    asyncio.run(asyncio.wait_for(test(), SAFETY_S))
    expected = (
        f"output pump-load: pump-load: unit 1 holding register 16 (uint16) on "
        f"127.0.0.1:{port}: Modbus exception 3 (illegal data value)"
    )
    assert advisor.last is not None
    raised = [e for e in events if e.alarm.rule == FALLBACK_ALARM]
    assert raised[0].kind is AlarmEventKind.RAISED
    assert raised[0].alarm.message == f"safe value 0.3: {expected}"
    assert raised[-1].kind is AlarmEventKind.CLEARED
    assert slave.rejected == 1 and advisor.counters["failures"] == 1


def test_a_refused_safe_value_is_sent_again_each_step(pump: tuple[PumpSlave, int]) -> None:
    slave, port = pump
    # 1 is 5000 and the safe 0.3 is 1500 in this register: the device refuses them all.
    action = ModbusSetpointAction(
        ModbusSetpointConfig.model_validate(
            {"type": "modbus_setpoint", "name": "pump-load", "transport": "tcp",
             "host": "127.0.0.1", "tcp_port": port, "address": SETPOINT_REGISTER,
             "scale": 0.0002}
        )
    )  # fmt: skip
    events: list[AlarmEvent] = []
    config = pump_advisor_config()
    observer = PumpObserver(period_s=config.step_s, failure=PredictionFailed)
    advisor = Advisor(config, observer, action, AlarmEngine([], (1,), events.append, {}))
    frames = list(islice(iter_frames(SimulatorSettings(rate_hz=1.0, seed=4)), 300))
    for frame in frames:
        values = frame.reported.as_dict() | {"load": frame.load}
        for channel in ("bearing_temp", "ambient", "current", "load"):
            observer.observe(channel, frame.t, values[channel])
            advisor.observe(channel, frame.t)

    async def test() -> None:
        await action.start()
        try:
            for step, now in enumerate((290.0, 291.0, 292.0, 293.0), 1):
                advisor.step(now)
                await wait_until_async(lambda n=step: action.counters["failed"] == n, "refused")
        finally:
            await action.stop()

    asyncio.run(asyncio.wait_for(test(), SAFETY_S))
    assert advisor.guards.applied == 0.3 and action.health.is_failing
    # The first write (the recommendation), then the safe value at every step after it.
    assert action.counters["posted"] == 4 and slave.rejected == 4
    assert advisor.last is not None and advisor.last.decision.note.startswith("again: ")
    fallback = [e for e in events if e.alarm.rule == FALLBACK_ALARM]
    assert [e.kind for e in fallback] == [AlarmEventKind.RAISED]
