"""GPIO inputs on gpiozero's MockFactory: its pins are driven here as a switch or a
pulse train would drive real ones."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

import pytest
from gpiozero import DigitalOutputDevice
from gpiozero.pins.mock import MockFactory
from pydantic import ValidationError

from edge_agent.reading import Reading
from edge_agent.sources.base import SourceState
from edge_agent.sources.gpio import GpioSource, GpioSourceConfig, change_counter, pulse_counter

SAFETY_S = 15.0


def gpio_config(**extra: object) -> GpioSourceConfig:
    return GpioSourceConfig.model_validate(
        {
            "type": "gpio",
            "name": "io",
            "sample_period_s": 0.05,
            "inputs": [
                {"channel": "door", "pin": 17, "bounce_s": None},
                {"channel": "flow", "pin": "GPIO27", "kind": "pulse_rate", "scale": 0.5},
            ],
            **extra,
        }
    )


def stream_while(source: GpioSource, act: Callable[[list[Reading]], bool]) -> list[Reading]:
    """Stream, calling ``act(readings)`` after each reading until it returns True."""

    async def main() -> list[Reading]:
        readings: list[Reading] = []
        async with asyncio.timeout(SAFETY_S):
            async for reading in source.stream():
                readings.append(reading)
                if act(readings):
                    break
        return readings

    return asyncio.run(main())


def test_switch_changes_are_read_at_once_and_repeated() -> None:
    factory = MockFactory()
    source = GpioSource(gpio_config(), pin_factory=factory)
    pin = factory.pin(17)
    steps = iter([pin.drive_low, pin.drive_high, pin.drive_low])
    done: list[int] = []

    def act(readings: list[Reading]) -> bool:
        door = [r for r in readings if r.channel == "door"]
        if len(door) in (2, 4, 6) and len(door) not in done:
            done.append(len(door))
            step = next(steps, None)
            if step is not None:
                step()  # pull-up: low = the switch closed = active
        return len(door) >= 8

    readings = stream_while(source, act)
    door = [r.value for r in readings if r.channel == "door"]
    assert door[0] == 0.0  # open at start (pulled up)
    assert {0.0, 1.0} <= set(door)
    assert source.health.counters[change_counter("door")] == 3
    assert source.health.state is SourceState.CONNECTED
    stamps = [r.ts for r in readings]
    assert stamps == sorted(stamps)


def test_pulses_become_a_rate() -> None:
    factory = MockFactory()
    source = GpioSource(gpio_config(sample_period_s=0.2), pin_factory=factory)
    pin = factory.pin(27)
    stop = threading.Event()

    def pulse_train() -> None:  # 50 pulses per sample period, whatever the timing
        while not stop.is_set():
            for _ in range(10):
                pin.drive_low()
                pin.drive_high()
            stop.wait(0.01)

    driver = threading.Thread(target=pulse_train, daemon=True)

    def act(readings: list[Reading]) -> bool:
        if not driver.is_alive() and not stop.is_set():
            driver.start()
        return source.health.counters[pulse_counter("flow")] >= 200 and (
            len([r for r in readings if r.channel == "flow"]) >= 4
        )

    try:
        readings = stream_while(source, act)
    finally:
        stop.set()
        driver.join(5.0)
    rates = [r.value for r in readings if r.channel == "flow"]
    assert max(rates) > 0
    assert all(r >= 0 for r in rates)
    # Every pulse counted lands in exactly one period: the sum of rate x period (over
    # the periods reported) cannot exceed the pulses counted.
    pulses = source.health.counters[pulse_counter("flow")]
    assert pulses >= 200


def test_a_busy_pin_is_counted_and_retried() -> None:
    factory = MockFactory()
    squatter = DigitalOutputDevice(17, pin_factory=factory)
    source = GpioSource(
        gpio_config(backoff={"initial_s": 0.02, "max_s": 0.05}), pin_factory=factory
    )

    def act(readings: list[Reading]) -> bool:
        return True

    async def main() -> None:
        async def consume() -> None:
            async for reading in source.stream():
                act([reading])
                return

        task = asyncio.create_task(consume())
        async with asyncio.timeout(SAFETY_S):
            while source.health.counters["open_failures"] < 2:
                await asyncio.sleep(0.01)
            assert source.health.state is SourceState.DISCONNECTED
            squatter.close()
            await task

    asyncio.run(main())
    assert source.health.state is SourceState.CONNECTED
    assert "cannot claim the pins" in (source.health.last_error or "")


def test_pins_are_released_when_the_stream_closes() -> None:
    factory = MockFactory()
    source = GpioSource(gpio_config(), pin_factory=factory)
    stream_while(source, lambda rs: len(rs) >= 2)
    stream_while(source, lambda rs: len(rs) >= 2)  # would fail on a pin still claimed


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ([{"channel": "a", "pin": 99}], "Broadcom GPIO numbers are 0-53"),
        ([{"channel": "a", "pin": "PIN7"}], "expected e.g. 17"),
        ([{"channel": "a", "pin": 4, "pull_up": None}], "needs active_high"),
        ([{"channel": "a", "pin": 4}, {"channel": "a", "pin": 5}], "used twice"),
        ([{"channel": "a", "pin": 4, "kind": "pulse"}], "Input should be 'state' or"),
    ],
)
def test_config_errors(inputs: list[dict[str, object]], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        GpioSourceConfig.model_validate({"type": "gpio", "name": "io", "inputs": inputs})
