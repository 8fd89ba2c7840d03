"""The "gpio_pwm" action: a control value as a PWM duty cycle on a GPIO pin (gpiozero's
``PWMOutputDevice``), the advisor's output into a drive's 0-10 V analog input through an
RC filter and an amplifier (docs/io.md, "A PWM control output").

duty = (value - offset) / scale, in [0, 1]. One shape with the other control outputs
(``control.py``): ``write(value)`` refuses a value outside [minimum, maximum] (never
clipped), and while an alarm naming the action is active it holds ``safe_value`` and
refuses the advisor's writes. A write sets the duty cycle in microseconds (no I/O beyond
the GPIO's PWM registers).

The gpio alarm action (on/off/blink) stays what it is: an on/off lamp is not a control
value, and a duty cycle is not an alarm mode.

At ``start`` the pin is claimed at ``initial_value`` (default: ``safe_value``, else
``minimum``); at ``stop`` it goes to the same value and is released (a released pin
floats: the filter then decays to 0 V; wire the drive so that 0 V is its safe speed).
"""

from __future__ import annotations

import logging
import math
import re
from typing import Annotated, Any, Literal

from gpiozero import GPIOZeroError, PWMOutputDevice
from pydantic import Field, model_validator

from edge_agent.actions.base import ActionConfigBase
from edge_agent.actions.control import ControlGate
from edge_agent.actions.errors import ControlWriteFailed
from edge_agent.actions.health import DeliveryHealth
from edge_agent.alarms.model import AlarmEvent
from edge_agent.sources.gpio import make_pin_factory
from edgetwin_common.plugins import Plugin

__all__ = ["PLUGIN", "GpioPwmAction", "GpioPwmConfig"]

log = logging.getLogger(__name__)


class GpioPwmConfig(ActionConfigBase):
    """A control value written as a PWM duty cycle (the advisor's output)."""

    type: Literal["gpio_pwm"]
    pin: Annotated[int | str, Field(union_mode="left_to_right")]
    """Broadcom number (18) or name (GPIO18, BCM18, BOARD12); a hardware PWM pin (12,
    13, 18, 19) gives the steadiest duty with the lgpio factory."""
    pin_factory: Literal["default", "lgpio", "mock"] = "default"
    frequency_hz: Annotated[float, Field(gt=0, le=100_000)] = 1000.0
    """PWM frequency: well above the filter's corner (1 kHz into a 1 s RC filter)."""
    active_high: bool = True
    scale: float = 1.0
    """duty = (value - offset) / scale; e.g. a load 0..1 straight as duty 0..1: 1."""
    offset: float = 0.0
    minimum: float = 0.0
    maximum: float = 1.0
    """The values accepted (control units): outside, refused, never clipped."""
    safe_value: float | None = None
    """Written when an alarm naming this action is raised, and held while it is active."""
    initial_value: float | None = None
    """The value at start and stop (default: safe_value, else minimum)."""

    @model_validator(mode="after")
    def _consistent(self) -> GpioPwmConfig:
        problems: list[str] = []
        if isinstance(self.pin, int) and not 0 <= self.pin <= 53:
            problems.append(f"pin {self.pin}: Broadcom GPIO numbers are 0-53")
        if isinstance(self.pin, str) and not re.match(r"^(GPIO|BCM|BOARD|J8:)?\d{1,2}$", self.pin):
            problems.append(f"pin {self.pin!r}: expected e.g. 18, GPIO18, BCM18 or BOARD12")
        if self.scale == 0 or not math.isfinite(self.scale):
            problems.append(f"scale must be a finite number other than 0, got {self.scale}")
        if not self.minimum < self.maximum:
            problems.append(f"minimum ({self.minimum}) must be below maximum ({self.maximum})")
        for key in ("safe_value", "initial_value"):
            value = getattr(self, key)
            if value is not None and not self.minimum <= value <= self.maximum:
                problems.append(f"{key} ({value}) is outside [minimum, maximum]")
        if not problems:
            for key in ("minimum", "maximum"):
                duty = self.duty(getattr(self, key))
                if not 0.0 <= duty <= 1.0:
                    problems.append(f"{key}: {getattr(self, key)} is a duty of {duty:g}, not 0..1")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def duty(self, value: float) -> float:
        return (value - self.offset) / self.scale

    @property
    def rest_value(self) -> float:
        """The value at start and stop."""
        for value in (self.initial_value, self.safe_value):
            if value is not None:
                return value
        return self.minimum


class GpioPwmAction:
    """Drives a PWM duty cycle from ``write``; see the module docstring.

    pin_factory: the gpiozero pin factory (tests pass a ``MockFactory`` with
        ``pin_class=MockPWMPin`` and read the pin's ``state``); default: the config's.
    """

    def __init__(self, config: GpioPwmConfig, *, pin_factory: Any = None) -> None:
        self.name = config.name
        self.config = config
        self.counters: dict[str, int] = {"written": 0, "failed": 0, "events": 0}
        self.health = DeliveryHealth()
        self.gate = ControlGate(
            config.name, config.minimum, config.maximum, config.safe_value, self.counters
        )
        self.last_value: float | None = None
        self._pin_factory = pin_factory
        self._device: PWMOutputDevice | None = None

    @property
    def is_interlocked(self) -> bool:
        return self.gate.is_interlocked

    def write(self, value: float) -> None:
        """Set the duty for ``value`` now. Raises ControlWriteFailed when interlocked,
        outside [minimum, maximum] or when the pin is not claimed."""
        self.gate.check_write(value)
        self._set(value)

    def _set(self, value: float) -> None:
        device = self._device
        if device is None:
            self.counters["failed"] += 1
            error = f"{self.name}: pin {self.config.pin} is not claimed"
            self.health.failed(error)
            raise ControlWriteFailed(error)
        device.value = self.config.duty(value)
        self.counters["written"] += 1
        self.health.succeeded()
        self.last_value = value

    def notify(self, event: AlarmEvent) -> None:
        self.counters["events"] += 1
        safe = self.gate.on_alarm(event)
        if safe is not None:
            try:
                self._set(safe)
            except ControlWriteFailed as exc:
                log.warning("gpio_pwm %s: the safe value was not set: %s", self.name, exc)

    async def start(self) -> None:
        """Claim the pin at the rest value."""
        if self._device is not None:
            return
        config = self.config
        try:
            factory = self._pin_factory or make_pin_factory(config.pin_factory)
            self._device = PWMOutputDevice(
                config.pin,
                active_high=config.active_high,
                initial_value=config.duty(config.rest_value),
                frequency=config.frequency_hz,
                pin_factory=factory,
            )
        except (GPIOZeroError, ImportError, OSError, RuntimeError) as exc:
            self.health.failed(f"cannot claim pin {config.pin}: {exc}")
            log.error("gpio_pwm %s: cannot claim pin %s: %s", self.name, config.pin, exc)
            return
        self.health.succeeded()
        self.last_value = config.rest_value

    async def stop(self, timeout_s: float = 5.0) -> None:
        """Go to the rest value and release the pin."""
        device, self._device = self._device, None
        if device is None:
            return
        device.value = self.config.duty(self.config.rest_value)
        device.close()


PLUGIN = Plugin(GpioPwmConfig, GpioPwmAction)
