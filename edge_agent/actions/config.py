"""Action configs: a discriminated union on ``type``."""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import Field, HttpUrl, model_validator

from edgetwin_common.config import Name, Strict


class LogActionConfig(Strict):
    type: Literal["log"]
    name: Name
    level: Literal["info", "warning", "error"] = "warning"


class WebhookActionConfig(Strict):
    """HTTP POST of the alarm event as JSON, retried with exponential backoff."""

    type: Literal["webhook"]
    name: Name
    url: HttpUrl
    timeout_s: Annotated[float, Field(gt=0, le=120)] = 5.0
    retries: Annotated[int, Field(ge=0, le=100)] = 5
    backoff_initial_s: Annotated[float, Field(gt=0)] = 0.5
    backoff_max_s: Annotated[float, Field(gt=0)] = 30.0
    headers: dict[str, str] = Field(default_factory=dict)
    queue_max: Annotated[int, Field(ge=1)] = 1000
    """Events waiting to be sent; past it the oldest is dropped and counted."""


class OutputMode(StrEnum):
    """What a GPIO output does."""

    OFF = "off"
    ON = "on"
    BLINK = "blink"


class GpioOutputActionConfig(Strict):
    """A digital output (relay, buzzer, lamp, LED) driven by the alarms that name it.

    With several alarms open the output takes the strongest of their modes (blink, then
    on, then off). Safe state: off (de-energised) at start, at shutdown and whenever no
    alarm is open; docs/io.md says what happens after a crash and how to wire for it.
    """

    type: Literal["gpio"]
    name: Name
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


ActionConfig = Annotated[
    LogActionConfig | WebhookActionConfig | GpioOutputActionConfig, Field(discriminator="type")
]
