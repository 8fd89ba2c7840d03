"""The "gpio" action: a relay, buzzer, lamp or LED on a GPIO pin, driven by alarms.

The output follows the alarms that name it: for each open alarm the mode its state asks
for (``when_unacknowledged``, ``when_acknowledged``, ``when_cleared_unacknowledged``),
and of those the strongest (blink > on > off). Blinking is gpiozero's background blink
thread. ``notify`` only switches the pin (microseconds, no I/O beyond the GPIO write).

Safe state is off (de-energised): the pin is claimed and driven off at ``start``, driven
off again and released at ``stop``; after a crash the agent's next start drives it off
before alarms restored from the store switch it again (docs/io.md, "Safe state").
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from enum import StrEnum
from typing import Annotated, Any, Literal

from gpiozero import DigitalOutputDevice, GPIOZeroError
from pydantic import Field, model_validator

from edge_agent.actions.base import ActionConfigBase
from edge_agent.actions.health import DeliveryHealth
from edge_agent.alarms.model import Alarm, AlarmEvent, AlarmState
from edge_agent.sources.gpio import make_pin_factory
from edgetwin_common.plugins import Plugin

__all__ = ["PLUGIN", "GpioOutputAction", "GpioOutputActionConfig", "OutputMode"]

log = logging.getLogger(__name__)


class OutputMode(StrEnum):
    """What a GPIO output does."""

    OFF = "off"
    ON = "on"
    BLINK = "blink"


class GpioOutputActionConfig(ActionConfigBase):
    """A digital output (relay, buzzer, lamp, LED) driven by the alarms that name it.

    With several alarms open the output takes the strongest of their modes (blink, then
    on, then off). Safe state: off (de-energised) at start, at shutdown and whenever no
    alarm is open; docs/io.md says what happens after a crash and how to wire for it.
    """

    type: Literal["gpio"]
    pin: Annotated[int | str, Field(union_mode="left_to_right")]
    """Broadcom number (27) or name (GPIO27, BCM27, BOARD13)."""
    pin_factory: Literal["default", "lgpio", "mock"] = "default"
    """default: gpiozero's choice (lgpio on a Pi); mock: no hardware (a dry run)."""
    active_high: bool = True
    """False for relay boards whose input is active low (most opto-isolated modules)."""
    when_unacknowledged: OutputMode = OutputMode.BLINK
    """While an alarm is active and not acknowledged."""
    when_acknowledged: OutputMode = OutputMode.ON
    """While an alarm is active and acknowledged (a horn: "off", silenced)."""
    when_cleared_unacknowledged: OutputMode = OutputMode.OFF
    """After an alarm cleared and before anyone acknowledged it."""
    blink_on_s: Annotated[float, Field(gt=0, le=60)] = 0.5
    blink_off_s: Annotated[float, Field(gt=0, le=60)] = 0.5

    @model_validator(mode="after")
    def _pin(self) -> GpioOutputActionConfig:
        if isinstance(self.pin, int):
            if not 0 <= self.pin <= 53:
                raise ValueError(f"pin {self.pin}: Broadcom GPIO numbers are 0-53")
        elif not re.match(r"^(GPIO|BCM|BOARD|J8:)?\d{1,2}$", self.pin):
            raise ValueError(f"pin {self.pin!r}: expected e.g. 27, GPIO27, BCM27 or BOARD13")
        return self


_STRENGTH = {OutputMode.OFF: 0, OutputMode.ON: 1, OutputMode.BLINK: 2}


class GpioOutputAction:
    """Drives one GPIO output from alarm events (see the module docstring).

    pin_factory: the gpiozero pin factory to claim the pin from (tests pass a
        ``MockFactory`` and read the pin); default: the one the config names.

    Counters: ``events`` (notified), ``switches`` (changes of mode), ``open_failures``
    (the pin could not be claimed: the alarms are still tracked, the pin is not driven).
    """

    def __init__(self, config: GpioOutputActionConfig, *, pin_factory: Any = None) -> None:
        self.name = config.name
        self.config = config
        self.counters: dict[str, int] = {"events": 0, "switches": 0, "open_failures": 0}
        self.health = DeliveryHealth()
        """Success: the pin was claimed or driven; error: it could not be claimed."""
        self.mode = OutputMode.OFF
        """The mode the output is in (or would be in, while the pin is not claimed)."""
        self._pin_factory = pin_factory
        self._open: dict[int, tuple[AlarmState, bool]] = {}
        """Open alarms by id: state and whether acknowledged."""
        self._device: DigitalOutputDevice | None = None

    @property
    def is_driving(self) -> bool:
        """True while the pin is claimed."""
        return self._device is not None

    def notify(self, event: AlarmEvent) -> None:
        self.counters["events"] += 1
        self._track(event.alarm)
        self._apply()

    def restore(self, alarms: Iterable[Alarm]) -> None:
        """Take over alarms still open from before a restart (they raise no new events)."""
        for alarm in alarms:
            self._track(alarm)
        self._apply()

    async def start(self) -> None:
        """Claim the pin, driven off (the safe state), then show the open alarms."""
        if self._device is not None:
            return
        try:
            factory = self._pin_factory or make_pin_factory(self.config.pin_factory)
            self._device = DigitalOutputDevice(
                self.config.pin,
                active_high=self.config.active_high,
                initial_value=False,
                pin_factory=factory,
            )
        except (GPIOZeroError, ImportError, OSError, RuntimeError) as exc:
            self.counters["open_failures"] += 1
            self.health.failed(f"cannot claim pin {self.config.pin}: {exc}")
            log.error("gpio output %s: cannot claim pin %s: %s", self.name, self.config.pin, exc)
            return
        self._drive(self.mode)

    async def stop(self, timeout_s: float = 5.0) -> None:
        """Drive the output off (the safe state) and release the pin."""
        device = self._device
        if device is None:
            return
        device.off()  # also stops a blink thread
        device.close()
        self._device = None

    def _track(self, alarm: Alarm) -> None:
        if alarm.state is AlarmState.CLEARED and alarm.acked_at is not None:
            self._open.pop(alarm.id, None)  # done: cleared and acknowledged
        else:
            self._open[alarm.id] = (alarm.state, alarm.acked_at is not None)

    def _wanted(self) -> OutputMode:
        config = self.config
        mode = OutputMode.OFF
        for state, _acked in self._open.values():
            if state is AlarmState.ACTIVE_UNACKNOWLEDGED:
                candidate = config.when_unacknowledged
            elif state is AlarmState.ACTIVE_ACKNOWLEDGED:
                candidate = config.when_acknowledged
            else:
                candidate = config.when_cleared_unacknowledged
            if _STRENGTH[candidate] > _STRENGTH[mode]:
                mode = candidate
        return mode

    def _apply(self) -> None:
        wanted = self._wanted()
        if wanted is self.mode:
            return
        self.mode = wanted
        self.counters["switches"] += 1
        self._drive(wanted)

    def _drive(self, mode: OutputMode) -> None:
        device = self._device
        if device is None:
            return
        self.health.succeeded()
        if mode is OutputMode.ON:
            device.on()
        elif mode is OutputMode.BLINK:
            device.blink(self.config.blink_on_s, self.config.blink_off_s, background=True)
        else:
            device.off()


PLUGIN = Plugin(GpioOutputActionConfig, GpioOutputAction)
