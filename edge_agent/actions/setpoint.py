"""The "setpoint" action: writes a control value back to a serial device as one line
``<field>=<value>`` (``load=0.6000``), the line protocol's way back (the simulated pump
reads it: docs/simulator.md, "Commands").

It is the advisor's output (``write``) and an alarm action: while an alarm that names it
is active, it holds the device at ``safe_value`` (written at the raise) and refuses the
advisor's writes, an interlock independent of the advisor's own guards.

The port is opened on first use, non-exclusively (the serial source reading the same
device holds the exclusive lock; a second handle on the same tty only writes), with a
zero write timeout: a write never blocks the event loop, and a full buffer is an error.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Annotated, Any, Literal

import serial
from pydantic import Field, model_validator

from edge_agent.actions.base import ActionConfigBase
from edge_agent.actions.control import ControlGate
from edge_agent.actions.errors import ControlWriteFailed
from edge_agent.actions.health import DeliveryHealth
from edge_agent.alarms.model import AlarmEvent
from edgetwin_common.config import Name
from edgetwin_common.plugins import Plugin

__all__ = ["PLUGIN", "SetpointAction", "SetpointActionConfig"]

log = logging.getLogger(__name__)


class SetpointActionConfig(ActionConfigBase):
    """A control value written back over a serial line (the advisor's output)."""

    type: Literal["setpoint"]
    port: Annotated[str, Field(min_length=1)]
    """The device's port (a path such as /dev/serial/by-id/..., or a pyserial URL);
    usually the same as the serial source's."""
    baudrate: Annotated[int, Field(gt=0)] = 115200
    field: Name = "load"
    """The command's field name: the line is ``<field>=<value>``."""
    decimals: Annotated[int, Field(ge=0, le=9)] = 4
    minimum: float = 0.0
    maximum: float = 1.0
    """The device's accepted range: values outside are refused, never clipped."""
    safe_value: float | None = None
    """Written when an alarm naming this action is raised, and held while it is active;
    None: alarms do not touch the output."""

    @model_validator(mode="after")
    def _range(self) -> SetpointActionConfig:
        if not self.minimum < self.maximum:
            raise ValueError(f"minimum ({self.minimum}) must be below maximum ({self.maximum})")
        if self.safe_value is not None and not self.minimum <= self.safe_value <= self.maximum:
            raise ValueError(f"safe_value ({self.safe_value}) is outside [minimum, maximum]")
        return self


class SetpointAction:
    """Writes ``<field>=<value>\\n`` to the port; see the module docstring."""

    def __init__(self, config: SetpointActionConfig) -> None:
        self.name = config.name
        self.config = config
        self.counters: dict[str, int] = {"written": 0, "failed": 0, "events": 0}
        self.gate = ControlGate(
            config.name, config.minimum, config.maximum, config.safe_value, self.counters
        )
        self.last_value: float | None = None
        self.health = DeliveryHealth()
        self._port: Any = None

    @property
    def is_interlocked(self) -> bool:
        """An alarm naming this action is active and the safe value is held."""
        return self.gate.is_interlocked

    def write(self, value: float) -> None:
        """Write ``value`` now. Raises ControlWriteFailed when interlocked by an alarm,
        outside [minimum, maximum], or when the port cannot take the line."""
        self.gate.check_write(value)
        self._write(value)

    def _write(self, value: float) -> None:
        self.gate.check_range(value)
        line = f"{self.config.field}={value:.{self.config.decimals}f}\n".encode("ascii")
        try:
            if self._port is None:
                self._port = serial.serial_for_url(
                    self.config.port, baudrate=self.config.baudrate, write_timeout=0
                )
            written = self._port.write(line)
            if written != len(line):
                raise serial.SerialTimeoutException(f"{written} of {len(line)} bytes written")
        except (serial.SerialException, OSError, ValueError) as exc:
            self.counters["failed"] += 1
            self._close()  # reopen on the next write: the device may have come back
            error = ControlWriteFailed(f"{self.name}: writing to {self.config.port}: {exc}")
            self.health.failed(str(error))
            raise error from exc
        self.counters["written"] += 1
        self.health.succeeded()
        self.last_value = value

    def notify(self, event: AlarmEvent) -> None:
        """Hold the safe value while an alarm naming this action is active."""
        self.counters["events"] += 1
        safe = self.gate.on_alarm(event)
        if safe is not None:
            try:
                self._write(safe)
            except ControlWriteFailed as exc:
                log.warning("setpoint %s: the safe value was not written: %s", self.name, exc)

    async def start(self) -> None:
        """Nothing to start: the port opens on the first write."""

    async def stop(self, timeout_s: float = 5.0) -> None:
        self._close()

    def _close(self) -> None:
        if self._port is not None:
            with contextlib.suppress(serial.SerialException, OSError):
                self._port.close()
            self._port = None


PLUGIN = Plugin(SetpointActionConfig, SetpointAction)
