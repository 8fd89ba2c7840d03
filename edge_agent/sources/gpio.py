"""GPIO inputs through gpiozero: switch states (a door, a float switch) and pulse
counters (a flow meter's hall sensor) turned into a rate.

gpiozero puts every pin behind a swappable pin factory: lgpio on a Raspberry Pi (any
model, kernel GPIO character device), ``MockFactory`` in tests and dry runs. The source
never touches pins itself.

Edges arrive on gpiozero's callback thread: a state input emits a reading at each
change (stamped when the edge is seen) and repeats its state every ``sample_period_s``
(so a door that stays shut is not "stale"); a pulse input counts edges and emits the
rate over each ``sample_period_s``.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Mapping
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal

from gpiozero import DigitalInputDevice, GPIOZeroError
from gpiozero.pins.mock import MockFactory
from pydantic import Field, model_validator

from edge_agent.reading import Reading
from edge_agent.sources.base import RECONNECT_KEYS, SourceConfigBase, SourceState
from edge_agent.sources.threaded import (
    OPEN_FAILURES,
    QUEUE_FULL,
    Emit,
    ThreadedSource,
    retrying_text,
)
from edgetwin_common.config import Name, Strict
from edgetwin_common.plugins import Plugin
from edgetwin_common.retry import Backoff, BackoffConfig

__all__ = [
    "COUNTERS",
    "PLUGIN",
    "GpioInput",
    "GpioSource",
    "GpioSourceConfig",
    "InputKind",
    "PinFactoryName",
    "make_pin_factory",
]

PinName = Annotated[
    int | str,
    Field(
        description="A Broadcom number (17), or a gpiozero pin name: GPIO17, BCM17, BOARD11",
        union_mode="left_to_right",
    ),
]

PinFactoryName = Literal["default", "lgpio", "mock"]

COUNTERS: tuple[str, ...] = (OPEN_FAILURES, QUEUE_FULL)
"""Source-wide counters; per input there are ``<channel>:changes`` (state inputs) or
``<channel>:pulses`` (pulse inputs)."""

_PIN_PATTERN = r"^(GPIO|BCM|BOARD|J8:)?\d{1,2}$"


class InputKind(StrEnum):
    STATE = "state"
    """1.0 while the input is active, 0.0 otherwise."""
    PULSE_RATE = "pulse_rate"
    """Active edges per second over each sample period, times scale, plus offset."""


class GpioInput(Strict):
    """One digital input."""

    channel: Name
    pin: PinName
    """Broadcom number (17) or name (GPIO17, BCM17, BOARD11)."""
    kind: InputKind = InputKind.STATE
    """state (a switch) or pulse_rate (a pulse output, e.g. a flow meter)."""
    pull_up: bool | None = True
    """True: internal pull-up, the switch connects the pin to ground (active when closed);
    False: internal pull-down, the switch connects to 3.3 V; None: no internal resistor
    (an external one, or a driven output), then active_high says which level is active."""
    active_high: bool | None = None
    """Only with pull_up = None: True if a high level means active."""
    bounce_s: Annotated[float, Field(gt=0, le=1)] | None = None
    """Ignore edges for this long after one (contact bounce; leave unset for pulses)."""
    scale: float = 1.0
    """pulse_rate: the rate (Hz) is multiplied by this, e.g. 1/7.5 for a YF-S201 flow
    meter (7.5 Hz per L/min) gives L/min. state: the 0/1 value is."""
    offset: float = 0.0

    @model_validator(mode="after")
    def _pin_and_pull(self) -> GpioInput:
        if isinstance(self.pin, int):
            if not 0 <= self.pin <= 53:
                raise ValueError(f"pin {self.pin}: Broadcom GPIO numbers are 0-53")
        elif not re.match(_PIN_PATTERN, self.pin):
            raise ValueError(f"pin {self.pin!r}: expected e.g. 17, GPIO17, BCM17 or BOARD11")
        if self.pull_up is None and self.active_high is None:
            raise ValueError("pull_up = none needs active_high (which level is active)")
        if self.pull_up is not None and self.active_high is not None:
            raise ValueError("active_high is only for pull_up = none (a pull sets it)")
        return self


class GpioSourceConfig(SourceConfigBase):
    """Digital inputs on the board's GPIO header."""

    type: Literal["gpio"]
    pin_factory: PinFactoryName = "default"
    """default: gpiozero's choice (GPIOZERO_PIN_FACTORY, else lgpio on a Pi); lgpio;
    mock: gpiozero's MockFactory (no hardware: a dry run)."""
    sample_period_s: Annotated[float, Field(gt=0, le=3600)] = 1.0
    """State inputs repeat their state, pulse inputs report their rate, this often."""
    backoff: BackoffConfig = BackoffConfig(initial_s=1.0, max_s=60.0)
    """Waits before trying to claim the pins again (no jitter)."""
    inputs: Annotated[list[GpioInput], Field(min_length=1)]

    renamed_backoff_keys: ClassVar[Mapping[str, tuple[str, ...]]] = RECONNECT_KEYS

    @model_validator(mode="after")
    def _unique(self) -> GpioSourceConfig:
        problems: list[str] = []
        channels = [i.channel for i in self.inputs]
        pins = [_pin_key(i.pin) for i in self.inputs]
        for i, (channel, pin) in enumerate(zip(channels, pins, strict=True)):
            if channel in channels[:i]:
                problems.append(f"inputs.{i}.channel: {channel!r} is used twice")
            if pin in pins[:i]:
                problems.append(f"inputs.{i}.pin: {self.inputs[i].pin!r} is used twice")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def channel_names(self) -> list[str]:
        return [i.channel for i in self.inputs]


def _pin_key(pin: int | str) -> str:
    if isinstance(pin, int):
        return f"GPIO{pin}"
    return pin.replace("BCM", "GPIO") if pin[0].isalpha() else f"GPIO{pin}"


def make_pin_factory(name: PinFactoryName) -> Any:
    """The gpiozero pin factory for a config's ``pin_factory``; None means gpiozero's own
    default. Raises GPIOZeroError / ImportError when the backend is not installed."""
    if name == "mock":
        return MockFactory()
    if name == "lgpio":
        from gpiozero.pins.lgpio import LGPIOFactory  # needs the lgpio package

        return LGPIOFactory()
    return None


def change_counter(channel: str) -> str:
    return f"{channel}:changes"


def pulse_counter(channel: str) -> str:
    return f"{channel}:pulses"


class GpioSource(ThreadedSource):
    """Readings from GPIO inputs (see ``GpioSourceConfig``).

    pin_factory: the gpiozero pin factory to claim pins from (tests pass a
        ``MockFactory`` and drive its pins); default: the one the config names.
    clock: the time stamped on readings (UNIX s), shared with every other source.
    """

    config: GpioSourceConfig

    def __init__(
        self,
        config: GpioSourceConfig,
        *,
        pin_factory: Any = None,
        clock: Callable[[], float] = time.time,
        queue_size: int = 4096,
    ) -> None:
        super().__init__(config, COUNTERS, clock=clock, queue_size=queue_size)
        counters = self.health.counters
        for inp in config.inputs:
            key = change_counter if inp.kind is InputKind.STATE else pulse_counter
            counters[key(inp.channel)] = 0
        self._pin_factory = pin_factory

    def _open(self) -> list[DigitalInputDevice] | None:
        factory = self._pin_factory
        devices: list[DigitalInputDevice] = []
        try:
            if factory is None:
                factory = make_pin_factory(self.config.pin_factory)
            for inp in self.config.inputs:
                devices.append(
                    DigitalInputDevice(
                        inp.pin,
                        pull_up=inp.pull_up,
                        active_state=inp.active_high,
                        bounce_time=inp.bounce_s,
                        pin_factory=factory,
                    )
                )
        except (GPIOZeroError, ImportError, OSError, RuntimeError) as exc:
            for device in devices:
                device.close()
            self.health.counters[OPEN_FAILURES] += 1
            self._change(SourceState.DISCONNECTED, f"cannot claim the pins: {exc}")
            return None
        return devices

    def _run(self, stop: threading.Event, emit: Emit) -> None:
        devices = None
        for _ in Backoff(self.config.backoff).attempts_until(stop):
            devices = self._open()
            if devices is not None:
                break
        if devices is None:
            return  # stopped before the pins could be claimed
        self._change(SourceState.CONNECTED, None)
        try:
            self._sample(devices, stop, emit)
        finally:
            for device in devices:
                # Closing returns each pin to an input without pull (gpiozero's reset).
                device.close()

    def _sample(self, devices: list[DigitalInputDevice], stop: threading.Event, emit: Emit) -> None:
        config = self.config
        pulses = [0] * len(devices)
        for index, (inp, device) in enumerate(zip(config.inputs, devices, strict=True)):
            if inp.kind is InputKind.STATE:
                device.when_activated = self._on_edge(inp, 1.0, emit)
                device.when_deactivated = self._on_edge(inp, 0.0, emit)
            else:
                device.when_activated = self._on_pulse(inp, index, pulses)
        counted = list(pulses)
        last = time.monotonic()
        self._emit_states(devices, emit)
        while not stop.wait(config.sample_period_s):
            now = time.monotonic()
            elapsed = now - last
            last = now
            ts = self._clock()
            batch: list[Reading] = []
            for index, (inp, device) in enumerate(zip(config.inputs, devices, strict=True)):
                if inp.kind is InputKind.STATE:
                    value = 1.0 if device.is_active else 0.0
                    batch.append(Reading(ts, inp.channel, value * inp.scale + inp.offset))
                else:
                    seen = pulses[index]
                    rate = (seen - counted[index]) / elapsed if elapsed > 0 else 0.0
                    counted[index] = seen
                    batch.append(Reading(ts, inp.channel, rate * inp.scale + inp.offset))
            self.health.last_reading_ts = ts
            if not emit(batch):
                return

    def _emit_states(self, devices: list[DigitalInputDevice], emit: Emit) -> None:
        ts = self._clock()
        batch = [
            Reading(ts, inp.channel, (1.0 if device.is_active else 0.0) * inp.scale + inp.offset)
            for inp, device in zip(self.config.inputs, devices, strict=True)
            if inp.kind is InputKind.STATE
        ]
        if batch:
            self.health.last_reading_ts = ts
            emit(batch)

    def _on_edge(self, inp: GpioInput, value: float, emit: Emit) -> Callable[[], None]:
        counters = self.health.counters
        key = change_counter(inp.channel)

        def on_edge() -> None:  # gpiozero's callback thread
            counters[key] += 1
            ts = self._clock()
            self.health.last_reading_ts = ts
            emit([Reading(ts, inp.channel, value * inp.scale + inp.offset)])

        return on_edge

    def _on_pulse(self, inp: GpioInput, index: int, pulses: list[int]) -> Callable[[], None]:
        counters = self.health.counters
        key = pulse_counter(inp.channel)

        def on_pulse() -> None:  # gpiozero's callback thread; the only writer of pulses[i]
            pulses[index] += 1
            counters[key] += 1

        return on_pulse

    def _connected_text(self) -> str:
        return f"{len(self.config.inputs)} input(s) claimed"

    def _disconnected_text(self, error: str | None) -> str:
        return retrying_text(error, self.config.backoff)


PLUGIN = Plugin(GpioSourceConfig, GpioSource)
