"""The gpio_pwm control output on gpiozero's MockFactory with MockPWMPin: the pin's
recorded duty cycle is what a drive's analog input (through an RC filter) would see."""

from __future__ import annotations

import asyncio

import pytest
from gpiozero.pins.mock import MockFactory, MockPWMPin
from pydantic import ValidationError

from edge_agent.actions.errors import ControlWriteFailed
from edge_agent.actions.gpio_pwm import GpioPwmAction, GpioPwmConfig
from edge_agent.alarms.model import Alarm, AlarmEvent, AlarmEventKind, AlarmState, Severity


def _config(**values: object) -> GpioPwmConfig:
    return GpioPwmConfig.model_validate({"type": "gpio_pwm", "name": "vfd", "pin": 18, **values})


def _event(kind: AlarmEventKind) -> AlarmEvent:
    alarm = Alarm(
        id=3, rule="bearing-very-hot", channel="bearing_temp", kind="value_above",
        severity=Severity.CRITICAL, state=AlarmState.ACTIVE_UNACKNOWLEDGED, raised_at=1.0,
        value=86.0, message="bearing hot",
    )  # fmt: skip
    return AlarmEvent(kind, 1.0, alarm)


def test_write_sets_the_duty_cycle_within_the_range_and_holds_the_safe_value() -> None:
    factory = MockFactory(pin_class=MockPWMPin)
    # A drive reading 2..10 V as 0..100 %, behind a 0..10 V stage: load 0..1 -> duty 0.2..1.
    action = GpioPwmAction(
        _config(scale=1.25, offset=-0.25, safe_value=0.3, minimum=0.15), pin_factory=factory
    )
    pin = factory.pin(18)

    async def run() -> None:
        await action.start()
        assert pin.state == pytest.approx(0.44)  # claimed at the safe value
        action.write(0.8)
        assert pin.state == pytest.approx(0.84) and pin.frequency == 1000
        with pytest.raises(ControlWriteFailed, match=r"1.2 is outside \[0.15, 1.0\]"):
            action.write(1.2)
        action.notify(_event(AlarmEventKind.RAISED))
        assert pin.state == pytest.approx(0.44)
        with pytest.raises(ControlWriteFailed, match=r"held at the safe value 0\.3 by alarm 3"):
            action.write(0.9)
        action.notify(_event(AlarmEventKind.CLEARED))
        action.write(0.9)
        assert pin.state == pytest.approx(0.92)
        await action.stop()

    asyncio.run(run())
    assert action.counters == {
        "written": 3, "failed": 0, "events": 2, "refused": 1, "interlocked": 1,
    }  # fmt: skip
    assert not action.health.is_failing


def test_an_unclaimed_pin_is_a_failed_write() -> None:
    factory = MockFactory(pin_class=MockPWMPin)
    factory.pin(18)  # (the pin exists: claim it elsewhere first)
    holder = GpioPwmAction(_config(), pin_factory=factory)
    second = GpioPwmAction(_config(), pin_factory=factory)

    async def run() -> None:
        await holder.start()
        await second.start()  # the pin is in use: not claimed, health says why
        with pytest.raises(ControlWriteFailed, match="pin 18 is not claimed"):
            second.write(0.5)
        await holder.stop()

    asyncio.run(run())
    assert second.health.is_failing and second.counters["failed"] == 1


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"scale": 0}, "scale must be a finite number other than 0"),
        ({"maximum": 2.0}, "maximum: 2.0 is a duty of 2, not 0..1"),
        ({"pin": 99}, "Broadcom GPIO numbers are 0-53"),
        ({"safe_value": 1.5}, r"safe_value \(1.5\) is outside"),
    ],
)
def test_config_errors_are_named(values: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        _config(**values)
