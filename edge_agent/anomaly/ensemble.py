"""The "ensemble" score method: four detectors of different kinds of surprise, each on
the same -log10 probability scale, and one detection per event.

Per sample, with x the reading at time t and f the one-step forecast made for it:

1. Residual likelihood (as method "likelihood"): how unusual the last ``short_window``
   forecast misses are against their long-run distribution (``AnomalyLikelihood``, after
   Numenta's HTM anomaly likelihood).
2. Range novelty (``RangeNovelty``): x beyond every level seen, ``range_weight`` per
   percent of the range's width.
3. Contextual novelty (``ContextNovelty``, after contextOSE): the share of the last
   ``context_window`` readings that completed a quantized shape never seen before, as a
   likelihood against the channel's own long-run rate of new shapes (a noisy channel
   makes new shapes all the time; that is not an anomaly), times ``context_weight``.
4. Seasonal likelihood (``SeasonalBaseline``): x against the mean of readings at the
   same time of day (``daily_slots`` slots) and of week (``weekly_slots``), each miss over
   its typical size; the smaller of the two (unusual for the time of day *and* of week)
   as a likelihood, times ``seasonal_weight``. What the 32-sample window cannot see: a
   holiday, ordinary for its level and shape, not for its weekday.

The score is the largest of the four. Habituation (after ARTime's adaptive vigilance):
when a part reaches ``hold_level``, each part is first lowered by ``habit_weight`` per
detection it made recently (halving every ``habit_half_life`` steps): a kind of surprise
that keeps coming back on this channel is its habit, not an anomaly. A score reaching
``hold_level`` is reported and the next ``hold_samples`` samples report 0.0 unless a
higher score breaks through (as in "likelihood"). ``parts()`` names the components of
the last score, for the alarm's reason. Causal: every stage uses the past and the
current sample only. Per sample: preallocated rings and tables written in place and
scalar math. See docs/anomaly-quality.md.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Annotated, Literal

from pydantic import Field

from edge_agent.anomaly.context import ContextNovelty
from edge_agent.anomaly.likelihood import AnomalyLikelihood
from edge_agent.anomaly.novelty import RangeNovelty
from edge_agent.anomaly.residual import ResidualScorer, ResidualStageConfig, ScoreSettings
from edge_agent.anomaly.seasonal import SeasonalBaseline

_DAY_S = 86_400.0
_WEEK_S = 7 * _DAY_S
_log1p = math.log1p
PARTS = ("residual", "range", "context", "seasonal")
"""The names ``parts()`` gives the components, in this order."""


class EnsembleScoreConfig(ResidualStageConfig):
    """method = "ensemble": residual likelihood, range novelty, contextual novelty and
    seasonal likelihood, the largest of them, one detection per event; -log10 of a
    probability (3 = a 1-in-1,000 surprise). The detector of the NAB bench
    (docs/anomaly-quality.md)."""

    method: Literal["ensemble"] = "ensemble"
    """The score method (docs/anomaly-score.md)."""
    short_window: Annotated[int, Field(ge=1, le=1000)] = 3
    """Samples averaged for the short-term residual surprise."""
    likelihood_alpha: Annotated[float, Field(gt=0, le=1)] = 0.001
    """Weight of each sample in every likelihood's long-run statistics (~1/alpha-sample
    memory)."""
    likelihood_warmup: Annotated[int, Field(ge=1)] = 200
    """Surprises learned (no score: None) before the first score, after `warmup`."""
    range_weight: Annotated[float, Field(ge=0)] = 4.0
    """Score per percent of the range's width beyond the lowest or highest reading seen
    (0: off)."""
    context_levels: Annotated[int, Field(ge=2, le=64)] = 8
    """Bins of the range so far a reading is quantized into."""
    context_length: Annotated[int, Field(ge=1, le=12)] = 6
    """Readings per context (its shape)."""
    context_bits: Annotated[int, Field(ge=4, le=14)] = 12
    """2 ** context_bits contexts remembered (8 bytes each)."""
    context_window: Annotated[int, Field(ge=1, le=1000)] = 6
    """Readings over which the share of new contexts is taken."""
    context_weight: Annotated[float, Field(ge=0)] = 0.5
    """Multiplier of the contextual novelty's likelihood (0: off)."""
    daily_slots: Annotated[int, Field(ge=0, le=1440)] = 96
    """Slots of the day for the seasonal baseline (0: no daily baseline)."""
    weekly_slots: Annotated[int, Field(ge=0, le=2016)] = 168
    """Slots of the week for the seasonal baseline (0: no weekly baseline)."""
    seasonal_alpha: Annotated[float, Field(gt=0, le=1)] = 0.25
    """Weight of a new reading in its slot's mean (after 1/alpha readings)."""
    seasonal_min_count: Annotated[int, Field(ge=1)] = 2
    """Readings a slot has seen before it forecasts."""
    seasonal_window: Annotated[int, Field(ge=1, le=1000)] = 3
    """Seasonal misses averaged for the short-term seasonal surprise (a lasting departure
    from the time of day or week, not one odd reading)."""
    seasonal_level_s: Annotated[float, Field(ge=0)] = 0.0
    """Time constant (s) of the recent level the seasonal baseline's slots are offsets
    from (0: the slots hold the readings themselves)."""
    seasonal_weight: Annotated[float, Field(ge=0)] = 1.0
    """Multiplier of the seasonal likelihood (0: off)."""
    seasonal_gate: bool = True
    """A forecast miss the seasonal baseline explains is not surprising: the residual
    likelihood takes the smaller of the two misses (each over its typical size) once
    a baseline forecasts."""
    habit_weight: Annotated[float, Field(ge=0)] = 4.0
    """Habituation: a part's score is lowered by this per detection it made recently
    (what keeps firing on a channel is its habit, not an anomaly; 0: off)."""
    habit_half_life: Annotated[int, Field(ge=1)] = 1000
    """Steps over which a past detection's weight in the habit halves."""
    hold_level: Annotated[float, Field(gt=0)] = 4.5
    """A score at or above this starts a hold (one event, one detection); give the
    channel's score_above rule the same `set` (4.5: the level chosen on NAB, where the
    maximum of four likelihoods runs hotter than one)."""
    hold_samples: Annotated[int, Field(ge=0)] = 100
    """Samples that report 0.0 after a score reached hold_level (unless a higher score
    breaks through)."""

    def build(self) -> EnsembleDetector:
        return EnsembleDetector(self)


class _Seasonal:
    """A seasonal baseline of the readings' offsets from their recent level (an
    exponentially weighted mean with a ``seasonal_level_s`` time constant; 0: the
    readings themselves), and the typical size of its misses."""

    __slots__ = ("baseline", "last_ts", "level", "residual", "tau")

    def __init__(self, period_s: float, slots: int, s: EnsembleScoreConfig) -> None:
        self.baseline = SeasonalBaseline(period_s, slots, s.seasonal_alpha, s.seasonal_min_count)
        self.residual = ResidualScorer(ScoreSettings(alpha=s.alpha, warmup=s.warmup, clip=s.clip))
        self.tau = s.seasonal_level_s
        self.level = 0.0
        self.last_ts = math.nan

    def miss(self, ts: float, value: float) -> float:
        """The miss of the slot's forecast over its typical size (NaN: no forecast yet,
        or not warm), then learn ``value``."""
        baseline = self.baseline
        slot = baseline.slot(ts)
        level = self.level
        forecast = level + baseline.forecast(slot)
        baseline.learn(slot, value - level)
        if self.tau > 0.0:
            # The level follows a lasting change within ~tau: a machine that moved to a
            # new level is not "unusual for the hour" for a whole period afterwards.
            last = self.last_ts
            weight = 1.0 if last != last else (ts - last) / self.tau
            if weight > 1.0:
                weight = 1.0
            elif weight < 0.0:
                weight = 0.0
            self.level = level + weight * (value - level)
            self.last_ts = ts
        if forecast != forecast:
            return forecast
        residual = self.residual
        ratio = residual.score(value, forecast)
        return ratio if residual.is_warm else math.nan


class EnsembleDetector:
    """One channel's ensemble detector; None until the residual likelihood is warm
    (``warmup`` + ``likelihood_warmup`` model steps), every other stage learning from
    the first sample. Not thread-safe."""

    __slots__ = (
        "_context",
        "_context_lik",
        "_context_weight",
        "_gate",
        "_habit_at",
        "_habit_half_life",
        "_habit_weight",
        "_habits",
        "_held",
        "_held_peak",
        "_hold_level",
        "_hold_samples",
        "_last",
        "_likelihood",
        "_range",
        "_residual",
        "_seasonal_lik",
        "_seasonal_weight",
        "_seasons",
        "_settings",
        "_steps",
    )

    def __init__(self, settings: EnsembleScoreConfig | None = None) -> None:
        s = self._settings = settings or EnsembleScoreConfig()
        self._residual = ResidualScorer(s.residual_settings())
        self._likelihood = AnomalyLikelihood(
            s.short_window, s.likelihood_alpha, s.likelihood_warmup
        )
        self._range = RangeNovelty(s.range_weight)
        self._context = ContextNovelty(s.context_levels, s.context_length, s.context_bits)
        self._context_lik = AnomalyLikelihood(
            s.context_window, s.likelihood_alpha, s.likelihood_warmup
        )
        self._context_weight = s.context_weight
        seasons = []
        if s.daily_slots:
            seasons.append(_Seasonal(_DAY_S, s.daily_slots, s))
        if s.weekly_slots:
            seasons.append(_Seasonal(_WEEK_S, s.weekly_slots, s))
        self._seasons = tuple(seasons)
        self._seasonal_lik = AnomalyLikelihood(
            s.seasonal_window, s.likelihood_alpha, s.likelihood_warmup
        )
        self._seasonal_weight = s.seasonal_weight
        self._gate = s.seasonal_gate
        self._hold_level = s.hold_level
        self._hold_samples = s.hold_samples
        self._held = 0
        self._held_peak = 0.0
        self._steps = 0
        self._habit_weight = s.habit_weight
        self._habit_half_life = float(s.habit_half_life)
        self._habits = [0.0] * len(PARTS)
        self._habit_at = [0] * len(PARTS)
        self._last = [0.0] * len(PARTS)

    @property
    def is_warm(self) -> bool:
        """Scores are no longer None (``warmup_steps`` model steps seen)."""
        return self._likelihood.is_warm

    @property
    def warmup_steps(self) -> int:
        return self._settings.warmup + self._settings.likelihood_warmup

    @property
    def state_bytes(self) -> int:
        """Bytes of the detector's preallocated state (tables, slots, rings); the rest is
        a few dozen numbers."""
        s = self._settings
        rings = 8 * (s.short_window + s.context_window + s.seasonal_window)
        seasons = sum(season.baseline.state_bytes for season in self._seasons)
        return self._context.state_bytes + seasons + rings + 8 * len(self._last)

    def parts(self) -> Mapping[str, float]:
        """The last score's components by name (``PARTS``), before habituation and the
        hold."""
        return dict(zip(PARTS, self._last, strict=True))

    def score(self, ts: float, actual: float, forecast: float) -> float | None:
        """Score ``actual`` (read at ``ts``, Unix seconds) against the one-step
        ``forecast`` made for it, then learn from it: None until ``is_warm``, then >= 0.
        Raises ValueError for a non-finite reading or forecast."""
        was_warm = self._residual.is_warm
        surprise = self._residual.score(actual, forecast)
        last = self._last
        last[1] = self._range.score(actual)
        novelty = self._context.score(actual)
        seasonal = math.inf
        for season in self._seasons:
            miss = season.miss(ts, actual)
            if miss < seasonal:  # False for NaN: that baseline does not forecast yet
                seasonal = miss
        if not was_warm:
            return None
        last[2] = self._context_weight * self._context_lik.score(novelty)
        if seasonal != math.inf:
            last[3] = self._seasonal_weight * self._seasonal_lik.score(_log1p(seasonal))
        else:
            last[3] = 0.0
        was_warm = self._likelihood.is_warm
        if self._gate and seasonal < surprise:
            surprise = seasonal  # a miss the time of day or week explains
        last[0] = self._likelihood.score(_log1p(surprise))
        if not was_warm:
            return None
        self._steps += 1
        result = max(last)
        if result >= self._hold_level and self._habit_weight > 0.0:
            result = self._habituated()
        if self._held > 0 and result <= self._held_peak:
            self._held -= 1
            return 0.0
        if result >= self._hold_level:
            self._held = self._hold_samples
            self._held_peak = result
            self._fired(result)
        return result

    def _habituated(self) -> float:
        """The largest part less its habit: ``habit_weight`` per recent detection it
        made (each one's weight halving every ``habit_half_life`` steps). Only run when
        a part reaches hold_level."""
        best = 0.0
        steps = self._steps
        half_life = self._habit_half_life
        weight = self._habit_weight
        habits, since = self._habits, self._habit_at
        for i, part in enumerate(self._last):
            habit = habits[i] * 0.5 ** ((steps - since[i]) / half_life)
            part -= weight * habit
            if part > best:
                best = part
        return best

    def _fired(self, result: float) -> None:
        """Count a detection against the part that made it."""
        steps = self._steps
        half_life = self._habit_half_life
        weight = self._habit_weight
        habits, since = self._habits, self._habit_at
        for i, part in enumerate(self._last):
            habit = habits[i] * 0.5 ** ((steps - since[i]) / half_life)
            if part - weight * habit >= result:
                habits[i] = habit + 1.0
                since[i] = steps
                return
