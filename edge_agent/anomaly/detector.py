"""The channel's anomaly detector: the forecast residual's likelihood, the range's
novelty, and one detection per event.

Per sample, with x the reading and f the one-step forecast made for it:

1. Surprise: log1p(|x - f| / s), s the residual's running typical size
   (``ResidualScorer``; log1p so one huge miss does not dominate the averages).
2. Likelihood (``AnomalyLikelihood``): the mean of the last ``short_window`` surprises
   against their long-run distribution, as -log10 of a tail probability.
3. Range novelty (``RangeNovelty``): how far x lies beyond the lowest and highest
   readings ever seen, ``range_weight`` per percent of that range's width.
4. The score is the larger of 2 and 3. Rising edge: once it reaches ``hold_level`` it
   is reported on that sample and the next ``hold_samples`` samples report 0.0, so one
   event makes one detection (and an alarm rule at ``hold_level`` raises once per
   event, not once per noisy sample of it).

Units: -log10 of a probability (3 = a 1-in-1,000 surprise), >= 0; the range novelty
is put on that scale by its weight. Causal: every stage uses only the past and the
current sample. See docs/anomaly-quality.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from edge_agent.anomaly.likelihood import AnomalyLikelihood
from edge_agent.anomaly.novelty import RangeNovelty
from edge_agent.anomaly.score import ResidualScorer, ScoreSettings


@dataclass(frozen=True, slots=True)
class DetectorSettings:
    """See ``ScoreConfig`` in edge_agent/config/__init__.py for each field's meaning and range."""

    residual: ScoreSettings = field(default_factory=ScoreSettings)
    short_window: int = 3
    likelihood_alpha: float = 0.001
    likelihood_warmup: int = 200
    range_weight: float = 4.0
    hold_level: float = 3.0
    hold_samples: int = 200


class AnomalyDetector:
    """One channel's detector. ``score`` returns None while the residual scorer warms up
    (``ScoreSettings.warmup`` samples), then 0.0 while the likelihood learns
    (``likelihood_warmup`` samples), then scores. Not thread-safe."""

    __slots__ = ("_held", "_likelihood", "_range", "_residual", "_settings")

    def __init__(self, settings: DetectorSettings | None = None) -> None:
        s = settings or DetectorSettings()
        if s.hold_samples < 0 or not s.hold_level > 0.0:
            raise ValueError("hold_samples must be >= 0 and hold_level > 0")
        self._settings = s
        self._residual = ResidualScorer(s.residual)
        self._likelihood = AnomalyLikelihood(
            s.short_window, s.likelihood_alpha, s.likelihood_warmup
        )
        self._range = RangeNovelty(s.range_weight)
        self._held = 0

    @property
    def residual(self) -> ResidualScorer:
        """The residual stage (its ``is_warm``: scores are no longer None)."""
        return self._residual

    @property
    def is_warm(self) -> bool:
        """Every stage has learned enough to score."""
        return self._residual.is_warm and self._likelihood.is_warm

    def score(self, actual: float, forecast: float) -> float | None:
        """Score ``actual`` against the one-step ``forecast`` made for it, then learn
        from it. Raises ValueError for a non-finite reading or forecast."""
        was_warm = self._residual.is_warm
        surprise = self._residual.score(actual, forecast)
        if not was_warm:
            return None
        was_warm = self._likelihood.is_warm
        result = max(self._likelihood.score(math.log1p(surprise)), self._range.score(actual))
        if not was_warm:
            # The long-run statistics are still learning: no evidence of anything yet.
            return 0.0
        if self._held > 0:
            self._held -= 1
            return 0.0
        if result >= self._settings.hold_level:
            self._held = self._settings.hold_samples
        return result
