"""Per-channel cleaning settings. Every check is off unless configured."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, model_validator

from edge_agent.configbase import Strict


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
    """An isolated reading more than spike_k robust deviations (MAD) from the median of
    the last spike_window accepted readings: rejected ("spike"). None: off."""
    spike_window: Annotated[int, Field(ge=3, le=101)] = 9
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
