"""Alarm rule configs: a discriminated union on ``kind``."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import Field, model_validator

from edgetwin_common.config import Name, Strict


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


class _RuleCommon(Strict):
    name: Name
    channel: Annotated[str, Field(min_length=1)]
    """A channel name, or "*" for every channel."""
    severity: Severity = Severity.WARNING
    on_delay_s: Annotated[float, Field(ge=0)] = 0.0
    """The condition must hold this long before the alarm is raised."""
    off_delay_s: Annotated[float, Field(ge=0)] = 0.0
    """The clear condition must hold this long before the alarm clears."""
    actions: list[str] = Field(default_factory=lambda: ["log"])
    """Names of [[actions]] to notify on raise, acknowledge and clear."""
    message: str = ""


class _Levels(_RuleCommon):
    set: float
    """Level at which the alarm sets."""
    clear: float | None = None
    """Level at which it clears (hysteresis); default: the set level."""


class ThresholdKind(StrEnum):
    VALUE_ABOVE = "value_above"
    VALUE_BELOW = "value_below"
    RATE_ABOVE = "rate_above"
    """|Δvalue/Δt| in channel units per second, over the last two processed samples."""
    SCORE_ABOVE = "score_above"
    """The anomaly score (docs/anomaly-score.md)."""


class ThresholdRule(_Levels):
    kind: Literal["value_above", "value_below", "rate_above", "score_above"]

    @model_validator(mode="after")
    def _hysteresis_direction(self) -> ThresholdRule:
        if self.clear is None:
            return self
        if self.kind == "value_below":
            if self.clear < self.set:
                raise ValueError(
                    f"clear ({self.clear}) must be >= set ({self.set}) for value_below"
                )
        elif self.clear > self.set:
            raise ValueError(f"clear ({self.clear}) must be <= set ({self.set}) for {self.kind}")
        return self


class ForecastRule(_Levels):
    """A predicted crossing: raised when any forecast up to ``within_samples`` ahead
    is beyond ``set`` (e.g. "bearing above 85 °C within the horizon")."""

    kind: Literal["forecast_above", "forecast_below"]
    within_samples: Annotated[int, Field(ge=1)] | None = None
    """Look at horizons up to this many samples ahead; None: every horizon of the model."""

    @model_validator(mode="after")
    def _hysteresis_direction(self) -> ForecastRule:
        if self.clear is None:
            return self
        if self.kind == "forecast_below":
            if self.clear < self.set:
                raise ValueError(f"clear ({self.clear}) must be >= set ({self.set})")
        elif self.clear > self.set:
            raise ValueError(f"clear ({self.clear}) must be <= set ({self.set})")
        return self


class HealthCondition(StrEnum):
    STALE = "stale"
    STUCK = "stuck"
    DISCONNECTED = "disconnected"


class HealthRule(_RuleCommon):
    """Raised while the channel (or its source) is in any of ``conditions``."""

    kind: Literal["health"]
    conditions: Annotated[list[HealthCondition], Field(min_length=1)] = Field(
        default_factory=lambda: list(HealthCondition)
    )


AlarmRule = Annotated[ThresholdRule | ForecastRule | HealthRule, Field(discriminator="kind")]
