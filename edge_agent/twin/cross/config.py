"""[twin.cross]: the cross-channel surprise's settings (docs/anomaly-score.md)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from edgetwin_common.config import Name, Strict


class CrossConfig(Strict):
    """The cross-channel detector: each completed twin period, the twin's one-period
    prediction of every output channel from the actual window, the actual controls and
    the other channels, against the period's actual mean; the misses summed over
    explain_periods (what the channel did beyond what the others explain) and scored
    with the per-channel detector's stages (over its typical size, then its
    likelihood). Steps are twin periods (1 min for the shipped twin). Alarms come only
    from "cross_above" rules."""

    enabled: bool = True
    """Score the twin's channels each period (false: off; per-channel detection goes on)."""
    channels: list[Name] | None = None
    """Channels to score (None: every output of the twin)."""
    alpha: Annotated[float, Field(gt=0, le=1)] = 0.01
    """Weight of each period's unexplained sum in its typical size (0.01: a ~100-period
    memory, so a lasting fault is not its new normal within minutes)."""
    warmup: Annotated[int, Field(ge=1)] = 10
    """Periods whose unexplained sums are only learnt before the likelihood starts."""
    clip: Annotated[float, Field(gt=0)] = 2.0
    """Cap on one period's influence on the typical size, in typical sizes."""
    short_window: Annotated[int, Field(ge=1, le=100)] = 3
    """Periods averaged for the short-term surprise (a lasting miss, not one odd minute)."""
    likelihood_alpha: Annotated[float, Field(gt=0, le=1)] = 0.01
    """Weight of each period in the surprise's long-run statistics (~100 periods)."""
    likelihood_warmup: Annotated[int, Field(ge=1)] = 50
    """Periods learnt by the likelihood (no surprise yet) after `warmup`."""
    explain_periods: Annotated[int, Field(ge=1, le=1000)] = 10
    """Periods over which the misses are summed: the unexplained move that is scored,
    said in the reason ("4.2 °C above what ... predict over the last 10 min") and
    compared with a rule's min_unexplained."""
    event_level: Annotated[float, Field(gt=0)] = 2.5
    """A surprise at or above this is one detection (an event) for habituation; give the
    cross_above rule the same `set`."""
    habit_weight: Annotated[float, Field(ge=0)] = 2.0
    """Habituation: a channel's surprise is lowered by this per event it had recently (a
    twin that keeps missing on this device is its habit, not an anomaly; 0: off)."""
    habit_half_life: Annotated[int, Field(ge=1)] = 1440
    """Periods over which a past event's weight halves (1440: a day of minutes)."""
