"""The GPIO output action on gpiozero's MockFactory: the pin's recorded level is what a
relay, a buzzer or a lamp would do."""

from __future__ import annotations

import asyncio
import time

import pytest
from gpiozero.pins.mock import MockFactory

from edge_agent.actions.gpio_output import GpioOutputAction, GpioOutputActionConfig, OutputMode
from edge_agent.alarms.model import Alarm, AlarmEvent, AlarmEventKind, AlarmState, Severity


def alarm(alarm_id: int, state: AlarmState, acked: bool = False) -> Alarm:
    return Alarm(
        id=alarm_id,
        rule="tank-low",
        channel="level",
        kind="value_below",
        severity=Severity.CRITICAL,
        state=state,
        raised_at=1.0,
        value=0.1,
        message="level low",
        acked_at=2.0 if acked else None,
        acked_by="op" if acked else None,
        cleared_at=3.0 if state is AlarmState.CLEARED else None,
    )


def event(kind: AlarmEventKind, a: Alarm) -> AlarmEvent:
    return AlarmEvent(kind=kind, ts=5.0, alarm=a)


def output(factory: MockFactory, **extra: object) -> GpioOutputAction:
    config = GpioOutputActionConfig.model_validate(
        {"type": "gpio", "name": "relay", "pin": 22, "blink_on_s": 0.01, "blink_off_s": 0.01}
        | extra
    )
    return GpioOutputAction(config, pin_factory=factory)


def wait_for_toggles(pin: object, n: int) -> None:
    deadline = time.monotonic() + 10.0  # safety net only
    while len(pin.states) < n:  # type: ignore[attr-defined]
        assert time.monotonic() < deadline, "the output did not blink"
        time.sleep(0.005)


def test_follows_the_alarm_lifecycle_and_ends_in_the_safe_state() -> None:
    factory = MockFactory()
    action = output(factory)
    pin = factory.pin(22)

    async def main() -> None:
        await action.start()
        assert pin.state is False  # claimed, off
        action.notify(event(AlarmEventKind.RAISED, alarm(1, AlarmState.ACTIVE_UNACKNOWLEDGED)))
        assert action.mode is OutputMode.BLINK
        pin.clear_states()
        wait_for_toggles(pin, 4)  # blinking while unacknowledged
        action.notify(
            event(AlarmEventKind.ACKNOWLEDGED, alarm(1, AlarmState.ACTIVE_ACKNOWLEDGED, True))
        )
        assert action.mode is OutputMode.ON and pin.state is True  # steady once acknowledged
        action.notify(event(AlarmEventKind.CLEARED, alarm(1, AlarmState.CLEARED, True)))
        assert action.mode is OutputMode.OFF and pin.state is False
        action.notify(event(AlarmEventKind.RAISED, alarm(2, AlarmState.ACTIVE_ACKNOWLEDGED)))
        assert pin.state is True
        await action.stop()

    asyncio.run(main())
    assert pin.state is False  # the safe state at shutdown, with an alarm still active
    assert not action.is_driving
    assert action.counters["events"] == 4


def test_strongest_mode_wins_and_modes_are_configurable() -> None:
    factory = MockFactory()
    # A horn: sounds while unacknowledged, silenced by the acknowledgement.
    action = output(factory, when_unacknowledged="on", when_acknowledged="off")
    pin = factory.pin(22)

    async def main() -> None:
        await action.start()
        action.notify(event(AlarmEventKind.RAISED, alarm(1, AlarmState.ACTIVE_UNACKNOWLEDGED)))
        action.notify(event(AlarmEventKind.RAISED, alarm(2, AlarmState.ACTIVE_UNACKNOWLEDGED)))
        action.notify(
            event(AlarmEventKind.ACKNOWLEDGED, alarm(1, AlarmState.ACTIVE_ACKNOWLEDGED, True))
        )
        assert pin.state is True  # alarm 2 still unacknowledged
        action.notify(
            event(AlarmEventKind.ACKNOWLEDGED, alarm(2, AlarmState.ACTIVE_ACKNOWLEDGED, True))
        )
        assert pin.state is False
        await action.stop()

    asyncio.run(main())


def test_active_low_relay_board_is_off_high() -> None:
    factory = MockFactory()
    action = output(factory, active_high=False)
    pin = factory.pin(22)

    async def main() -> None:
        await action.start()
        assert pin.state is True  # de-energised = input high on an active-low board
        action.notify(event(AlarmEventKind.RAISED, alarm(1, AlarmState.ACTIVE_ACKNOWLEDGED)))
        assert pin.state is False
        await action.stop()

    asyncio.run(main())
    assert pin.state is True


def test_restored_alarms_drive_the_output_after_a_restart() -> None:
    factory = MockFactory()
    action = output(factory)
    pin = factory.pin(22)
    action.restore([alarm(7, AlarmState.ACTIVE_ACKNOWLEDGED, True)])

    async def main() -> None:
        await action.start()
        assert pin.state is True
        await action.stop()

    asyncio.run(main())


def test_a_pin_that_cannot_be_claimed_never_raises() -> None:
    factory = MockFactory()
    first, second = output(factory), output(factory)

    async def main() -> None:
        await first.start()
        await second.start()  # the pin is taken
        second.notify(event(AlarmEventKind.RAISED, alarm(1, AlarmState.ACTIVE_ACKNOWLEDGED)))
        assert second.mode is OutputMode.ON and not second.is_driving
        await second.stop()
        await first.stop()

    asyncio.run(main())
    assert second.counters["open_failures"] == 1
    # /status reports it: the lamp or horn is not showing the alarms.
    assert second.health.is_failing and second.health.last_success is None
    assert (second.health.last_error or "").startswith("cannot claim pin 22")
    assert first.health.last_success is not None and not first.health.is_failing


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"pin": 64}, "0-53"),
        ({"when_acknowledged": "flash"}, "'off', 'on' or 'blink'"),
        ({"blink_on_s": 0}, "greater than 0"),
    ],
)
def test_config_errors(extra: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        GpioOutputActionConfig.model_validate({"type": "gpio", "name": "r", "pin": 22} | extra)


def test_the_start_after_a_crash_drives_the_output_off_before_restoring() -> None:
    factory = MockFactory()
    pin = factory.pin(22)
    pin.drive_high()  # left high: the previous agent died with the relay on
    action = output(factory, when_acknowledged="on")
    action.restore([alarm(3, AlarmState.CLEARED)])  # open but asks for "off"

    async def main() -> None:
        await action.start()
        assert pin.state is False
        await action.stop()

    asyncio.run(main())
    assert [s.state for s in pin.states][-2:] == [True, False]
