"""The channel's anomaly detector: forecast residuals at two horizons, their
likelihood, the level's novelty, and one detection per event.

Per sample, with x the reading, f1 the one-step forecast made for it and fL the
forecast made for it ``horizon`` samples earlier (the model's longest horizon):

1. Surprise: the larger of |x - f1| / s1 and |x - fL| / sL (``ResidualScorer``: each
   residual over its own running typical size), compressed as log1p: the short and the
   long horizon see a sudden jump and a slow drift respectively.
2. Likelihood (``AnomalyLikelihood``): the last ``short_window`` surprises against
   their long-run distribution, as -log10 of a tail probability.
3. Level novelty (``LevelNovelty``), weighted by ``level_weight``: the reading against
   the channel's long-run level.
4. The score is the larger of 2 and 3. Rising edge: once it reaches ``hold_level`` it
   is reported on that sample and the next ``hold_samples`` samples report 0.0, so one
   event makes one detection (and an alarm rule at ``hold_level`` raises once per
   event, not once per noisy sample of it).

Units: -log10 of a probability (3 = a 1-in-1,000 surprise), >= 0. Causal: each stage
uses only the past and the current sample. See docs/anomaly-quality.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from edge_agent.anomaly.likelihood import AnomalyLikelihood
from edge_agent.anomaly.novelty import LevelNovelty
from edge_agent.anomaly.score import ResidualScorer, ScoreSettings


@dataclass(frozen=True, slots=True)
class DetectorSettings:
    """See ``ScoreConfig`` in edge_agent/config.py for each field's meaning and range."""

    residual: ScoreSettings = field(default_factory=ScoreSettings)
    short_window: int = 6
    likelihood_alpha: float = 0.0002
    likelihood_warmup: int = 200
    level_weight: float = 0.35
    level_alpha: float = 0.001
    hold_level: float = 2.5
    hold_samples: int = 100


class AnomalyDetector:
    """One channel's detector. ``score`` returns None while the residual scorer warms up
    (``ScoreSettings.warmup`` samples), then 0.0 while the likelihood and the level
    statistics learn (``likelihood_warmup`` samples), then scores."""

    __slots__ = (
        "_held",
        "_level",
        "_likelihood",
        "_long",
        "_settings",
        "_short",
    )

    def __init__(self, settings: DetectorSettings | None = None) -> None:
        s = settings or DetectorSettings()
        if s.hold_samples < 0 or s.level_weight < 0:
            raise ValueError("hold_samples and level_weight must be >= 0")
        self._settings = s
        self._short = ResidualScorer(s.residual)
        self._long = ResidualScorer(s.residual)
        self._likelihood = AnomalyLikelihood(
            s.short_window, s.likelihood_alpha, s.likelihood_warmup
        )
        self._level = LevelNovelty(s.level_alpha, s.likelihood_warmup)
        self._held = 0

    @property
    def is_warm(self) -> bool:
        """Every stage has learned enough to score."""
        return self._short.is_warm and self._likelihood.is_warm

    def score(self, actual: float, forecast: float, long_forecast: float) -> float | None:
        """Score ``actual`` against its one-step ``forecast`` and ``long_forecast`` (NaN
        when there is none yet), then learn from it. Raises ValueError for a non-finite
        reading or forecast."""
        was_warm = self._short.is_warm
        surprise = self._short.score(actual, forecast)
        if not was_warm:
            return None
        if not math.isnan(long_forecast):
            surprise = max(surprise, self._long.score(actual, long_forecast))
        was_warm = self._likelihood.is_warm
        result = self._likelihood.score(math.log1p(surprise))
        s = self._settings
        if s.level_weight > 0.0:
            result = max(result, s.level_weight * self._level.score(actual))
        if not was_warm:
            # The long-run statistics are still learning: no evidence of anything yet.
            return 0.0
        if self._held > 0:
            self._held -= 1
            return 0.0
        if result >= s.hold_level:
            self._held = s.hold_samples
        return result
