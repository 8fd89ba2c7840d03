"""What every control output (the advisor's ``output``) shares: the range it accepts and
the alarm interlock.

A control output (``modbus_setpoint``, ``gpio_pwm``, a webhook with ``control``) has
``write(value)``: a value outside [minimum, maximum] is refused, never clipped, and while
an alarm that names the action is active it holds ``safe_value`` (written at the raise)
and refuses the advisor's writes, an interlock independent of the advisor's guards.
``ControlGate`` keeps that state; each plugin writes its own way.
"""

from __future__ import annotations

import math

from pydantic import model_validator

from edge_agent.actions.errors import ControlWriteFailed
from edge_agent.alarms.model import AlarmEvent, AlarmEventKind
from edgetwin_common.config import Strict

__all__ = ["ControlGate", "ControlRange"]


class ControlRange(Strict):
    """The values a control output accepts, and its safe value."""

    minimum: float = 0.0
    maximum: float = 1.0
    """The values accepted (control units): outside, refused, never clipped."""
    safe_value: float | None = None
    """Written when an alarm naming this action is raised, and held while it is active;
    None: alarms do not touch the output."""

    @model_validator(mode="after")
    def _range(self) -> ControlRange:
        if not self.minimum < self.maximum:
            raise ValueError(f"minimum ({self.minimum}) must be below maximum ({self.maximum})")
        safe = self.safe_value
        if safe is not None and not self.minimum <= safe <= self.maximum:
            raise ValueError(f"safe_value ({safe}) is outside [minimum, maximum]")
        return self


class ControlGate:
    """The range check and the interlock of one control output. ``counters`` (the
    action's) gets ``refused`` and ``interlocked``."""

    def __init__(
        self, name: str, minimum: float, maximum: float, safe_value: float | None,
        counters: dict[str, int],
    ) -> None:  # fmt: skip
        self.name = name
        self.minimum = minimum
        self.maximum = maximum
        self.safe_value = safe_value
        self.counters = counters
        counters.setdefault("refused", 0)
        counters.setdefault("interlocked", 0)
        self._holding: set[int] = set()

    @property
    def is_interlocked(self) -> bool:
        """An alarm naming this action is active and the safe value is held."""
        return bool(self._holding) and self.safe_value is not None

    def check_write(self, value: float) -> None:
        """The advisor's write: raises ControlWriteFailed when interlocked or out of range."""
        if self.is_interlocked:
            self.counters["interlocked"] += 1
            raise ControlWriteFailed(
                f"{self.name}: held at the safe value {self.safe_value} by alarm "
                f"{min(self._holding)}"
            )
        self.check_range(value)

    def check_range(self, value: float) -> None:
        """Raises ControlWriteFailed outside [minimum, maximum] (or not a number)."""
        if not math.isfinite(value) or not self.minimum <= value <= self.maximum:
            self.counters["refused"] += 1
            raise ControlWriteFailed(
                f"{self.name}: {value} is outside [{self.minimum}, {self.maximum}]"
            )

    def on_alarm(self, event: AlarmEvent) -> float | None:
        """Track an alarm naming the action; the safe value to write now (at a raise,
        when configured), else None."""
        if event.kind is AlarmEventKind.RAISED:
            self._holding.add(event.alarm.id)
            return self.safe_value
        if event.kind is AlarmEventKind.CLEARED:
            self._holding.discard(event.alarm.id)
        return None
