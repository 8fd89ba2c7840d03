"""Per-channel cleaning settings. Every check is off unless configured."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, model_validator

from edgetwin_common.config import Strict


class CleaningConfig(Strict):
    """Checks applied to each reading before it reaches the window.

    Units are the channel's own; times are seconds.
    """

    min: float | None = None
    """Readings below are rejected (reason "range")."""
    max: float | None = None
    """Readings above are rejected (reason "range")."""
    max_rate_per_s: Annotated[float, Field(gt=0)] | None = None
    """|Δvalue / Δt| against the last accepted reading above this: rejected ("rate")."""
    spike_k: Annotated[float, Field(gt=0)] | None = None
    """A reading more than spike_k robust standard deviations from the median of the last
    spike_window readings: rejected ("spike"). None: off. The deviation is 1.4826 × the
    window's MAD, averaged over the last ~20 readings (a single window's MAD is too noisy).

    The window holds every reading that passed the other checks, rejected spikes
    included, so an isolated spike cannot move the median while a lasting change of
    level takes it over: a step is rejected for at most spike_window // 2 readings."""
    spike_window: Annotated[int, Field(ge=3, le=101)] = 9
    """Readings in the spike window (3 to 101). The check starts once the window is full
    and the noise scale has been seen over 10 windows (after spike_window + 9 readings)."""
    spike_min_deviation: Annotated[float, Field(ge=0)] = 0.0
    """Deviations from the median up to this (channel units) are never spikes. Set it to a
    few steps of the sensor's resolution: on a quantized, quiet signal the MAD is 0 and
    otherwise every one-step change would look like a spike."""
    stuck_after_s: Annotated[float, Field(gt=0)] | None = None
    """Identical readings for this long: the channel is "stuck" (health); further
    identical readings are rejected ("stuck") until the value changes."""
    stale_after_s: Annotated[float, Field(gt=0)] | None = None
    """No accepted reading for this long: the channel is "stale" (health)."""

    @model_validator(mode="after")
    def _range_order(self) -> CleaningConfig:
        if self.min is not None and self.max is not None and self.min >= self.max:
            raise ValueError(f"min ({self.min}) must be below max ({self.max})")
        return self
