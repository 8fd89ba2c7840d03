"""The advisor's config (``[twin.advisor]`` in a twin config; examples/twin.toml)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from edgetwin_common.config import Name, Strict

__all__ = ["AdvisorConfig", "ChannelLimit"]


class ChannelLimit(Strict):
    """The alarm limits of one predicted channel (its units), and the margin the advisor
    keeps inside them."""

    above: float | None = None
    """The level at which the channel's high alarm sets (e.g. a value_above rule's set)."""
    below: float | None = None
    margin: Annotated[float, Field(ge=0)] = 0.0
    """Predictions must stay this far inside the limits over the whole horizon."""

    @model_validator(mode="after")
    def _some_limit(self) -> ChannelLimit:
        if self.above is None and self.below is None:
            raise ValueError("a channel limit needs above, below or both")
        both = self.above is not None and self.below is not None
        if both and self.below + 2 * self.margin >= self.above:  # type: ignore[operator]
            raise ValueError(
                f"below ({self.below}) + 2 margins ({self.margin}) leaves no room under "
                f"above ({self.above})"
            )
        return self


class AdvisorConfig(Strict):
    """What the advisor optimizes, within what, and the guards on what it writes.

    Disabled by default: it then advises (``GET /twin/advisor`` and the status page show
    the recommendation and its margin) and never writes.
    """

    enabled: bool = False
    """Write the chosen value through ``output``; false: advise only."""
    predictor: Literal["pump-physics", "twin"] = "pump-physics"
    """What predicts the channels under a planned control: "pump-physics", the pump's
    thermal model from the observed state (edge_agent/simulator/observer.py; for the
    simulated pump and pumps with its parameters); "twin", the [twin] section's
    cross-channel model rolled forward from the stored summaries
    (edge_agent/twin/advisor/twin_predictor.py; needs [twin])."""
    twin_residual_periods: Annotated[int, Field(ge=0, le=120)] = 10
    """predictor "twin": the twin's one-period errors over this many stored periods
    before its state are measured and carried forward (their level and trend) in every
    roll: a heat the twin never learnt (wear, lost lubrication, a sensor drifting high).
    0: the twin alone (which predicts such a heat away, docs/advisor.md)."""
    output: Name | None = None
    """The name of the control output that writes the value (a ``setpoint``,
    ``modbus_setpoint``, ``gpio_pwm`` or ``webhook`` action: one with ``write``);
    required when enabled."""
    control: Name = "load"
    """The control channel (what the value sets; the twin's control input)."""
    objective: Literal["highest", "lowest"] = "highest"
    """The value sought among those that keep every limit: the highest (e.g. load:
    throughput) or the lowest (e.g. a cooling fan's duty)."""
    limits: dict[Name, ChannelLimit] = Field(min_length=1)
    """Per predicted channel, its alarm limits and the margin kept inside them."""
    minimum: float = 0.15
    maximum: float = 1.0
    """Bounds: no value outside [minimum, maximum] is recommended or written."""
    resolution: Annotated[float, Field(gt=0)] = 0.01
    """Step of the search over [minimum, maximum] (control units)."""
    horizon_s: Annotated[float, Field(gt=0, le=86400)] = 900.0
    """How far ahead every prediction must stay inside the limits."""
    step_s: Annotated[float, Field(gt=0)] = 10.0
    """Period of the predicted paths (and of the advisor's decisions)."""
    max_rate_per_min: Annotated[float, Field(gt=0)] = 0.1
    """Guard: the written value changes by at most this much per minute (control units);
    the search plans its ramps with it too."""
    hold_off_s: Annotated[float, Field(ge=0)] = 30.0
    """Guard: after each change, no other change for this long (except the safe value)."""
    min_change: Annotated[float, Field(ge=0)] = 0.01
    """Changes smaller than this are not written (no chatter on the output)."""
    safe_value: float | None = None
    """Written at once (past rate and hold-off) when the model fails, a channel the model
    reads is stale or its source is down; default: ``minimum`` for the highest objective,
    ``maximum`` for the lowest."""
    stale_after_s: Annotated[float, Field(gt=0)] = 30.0
    """A channel the advisor reads with no reading for this long is a sensor failure."""

    @model_validator(mode="after")
    def _consistent(self) -> AdvisorConfig:
        if not self.minimum < self.maximum:
            raise ValueError(f"minimum ({self.minimum}) must be below maximum ({self.maximum})")
        if self.enabled and self.output is None:
            raise ValueError("an enabled advisor needs output (the action that writes the value)")
        safe = self.safe_value
        if safe is not None and not self.minimum <= safe <= self.maximum:
            raise ValueError(
                f"safe_value ({safe}) must be within [minimum, maximum] "
                f"([{self.minimum}, {self.maximum}])"
            )
        if self.resolution > self.maximum - self.minimum:
            raise ValueError("resolution is wider than [minimum, maximum]")
        if self.step_s > self.horizon_s:
            raise ValueError(f"step_s ({self.step_s}) is longer than horizon_s ({self.horizon_s})")
        return self

    @property
    def safe(self) -> float:
        """The safe value in effect (``safe_value`` or the objective's cautious bound)."""
        if self.safe_value is not None:
            return self.safe_value
        return self.minimum if self.objective == "highest" else self.maximum

    def candidates_count(self) -> int:
        """How many values the search tries."""
        return round((self.maximum - self.minimum) / self.resolution) + 1
