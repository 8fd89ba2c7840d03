"""The "likelihood" score method: the forecast residual's likelihood, the range's
novelty, and one detection per event (``AnomalyDetector``).

Per sample, with x the reading and f the one-step forecast made for it:

1. Surprise: log1p(|x - f| / s), s the residual's running typical size
   (``ResidualScorer``; log1p so one huge miss does not dominate the averages).
2. Likelihood (``AnomalyLikelihood``): the mean of the last ``short_window`` surprises
   against their long-run distribution, as -log10 of a tail probability (below).
3. Range novelty (``RangeNovelty``): how far x lies beyond the lowest and highest
   readings ever seen, ``range_weight`` per percent of that range's width.
4. The score is the larger of 2 and 3. Rising edge: once it reaches ``hold_level`` it
   is reported on that sample and the next ``hold_samples`` samples report 0.0, so one
   event makes one detection (and an alarm rule at ``hold_level`` raises once per
   event, not once per noisy sample of it). A score above the one that started the
   hold breaks through it (reported, and the hold starts again from it): a bigger
   event right after a small one is not swallowed.

Units: -log10 of a probability (3 = a 1-in-1,000 surprise), >= 0; the range novelty
is put on that scale by its weight. Causal: every stage uses only the past and the
current sample. See docs/anomaly-quality.md.

Why the likelihood stage: the forecaster's normalized residual alone alarms on every
noisy stretch. Following Numenta's anomaly likelihood (Ahmad et al. 2017), the score asks
a second question: is the mean of the last ``short_window`` surprises far in the upper
tail of the distribution those surprises have had over the long run (an exponentially
weighted mean and variance with weight ``likelihood_alpha``, a ~1/alpha-sample memory)?
The answer is a tail probability p under a normal model, reported as -log10(p): 2 means
"1 in 100", 3 "1 in 1,000".

Per sample: a ring of ``short_window`` floats written in place and scalar math; nothing
allocated beyond Python floats.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Annotated, Literal

from pydantic import Field

from edge_agent.anomaly.novelty import RangeNovelty
from edge_agent.anomaly.residual import ResidualScorer, ResidualStageConfig

_SQRT2 = math.sqrt(2.0)
_MIN_TAIL = 1e-300  # -log10 caps at 300 instead of raising on log(0)
_MIN_VARIANCE = 1e-6  # surprises are log1p(ratio): a spread below 1e-3 is a perfect fit


def tail_score(z: float) -> float:
    """-log10 of the upper-tail probability of a standard normal beyond ``z``."""
    return -math.log10(max(0.5 * math.erfc(z / _SQRT2), _MIN_TAIL))


class AnomalyLikelihood:
    """Short-term mean of a surprise series against its long-term distribution.

    short_window >= 1 samples; alpha in (0, 1]; warmup >= 1 samples during which only
    the long-term statistics learn (plain mean and variance) and 0.0 is returned.
    """

    __slots__ = ("_alpha", "_count", "_mean", "_pos", "_ring", "_sum", "_variance", "_warmup")

    def __init__(self, short_window: int, alpha: float, warmup: int) -> None:
        if short_window < 1 or warmup < 1 or not 0.0 < alpha <= 1.0:
            raise ValueError("short_window and warmup must be >= 1, alpha in (0, 1]")
        self._ring = [0.0] * short_window
        self._pos = 0
        self._sum = 0.0
        self._alpha = alpha
        self._warmup = warmup
        self._count = 0
        self._mean = 0.0
        self._variance = 0.0

    @property
    def is_warm(self) -> bool:
        return self._count >= self._warmup

    def score(self, surprise: float) -> float:
        """Take one surprise (>= 0) and return -log10 of its window's tail probability
        (0.0 while warming up). The score uses the statistics from before this sample."""
        ring = self._ring
        pos = self._pos
        self._sum += surprise - ring[pos]
        ring[pos] = surprise
        self._pos = pos + 1 if pos + 1 < len(ring) else 0
        self._count += 1
        delta = surprise - self._mean
        if self._count <= self._warmup:
            # Welford while warming: every early sample counts equally.
            self._mean += delta / self._count
            self._variance += (delta * (surprise - self._mean) - self._variance) / self._count
            return 0.0
        spread = math.sqrt(max(self._variance, _MIN_VARIANCE))
        result = tail_score((self._sum / len(ring) - self._mean) / spread)
        self._mean += self._alpha * delta
        self._variance += self._alpha * (delta * delta - self._variance)
        return result


class LikelihoodScoreConfig(ResidualStageConfig):
    """method = "likelihood": the residual's likelihood, the range's novelty and one
    detection per event, as -log10 of a probability (3 = a 1-in-1,000 surprise); the
    shipped example config uses it (docs/anomaly-quality.md)."""

    method: Literal["likelihood"] = "likelihood"
    """The score method (docs/anomaly-score.md)."""
    short_window: Annotated[int, Field(ge=1, le=1000)] = 3
    """Samples averaged for the short-term surprise."""
    likelihood_alpha: Annotated[float, Field(gt=0, le=1)] = 0.001
    """Weight of each sample in the long-run surprise statistics (0.001: a ~1,000-sample
    memory)."""
    likelihood_warmup: Annotated[int, Field(ge=1)] = 200
    """Surprises learned (no score: None) before the first score, after the residual
    stage's `warmup`."""
    range_weight: Annotated[float, Field(ge=0)] = 4.0
    """Score per percent of the range's width by which a reading lies beyond the lowest
    or highest reading ever seen (0: off)."""
    hold_level: Annotated[float, Field(gt=0)] = 3.0
    """A score at or above this starts a hold (one event, one detection); give the
    channel's score_above rule the same `set`."""
    hold_samples: Annotated[int, Field(ge=0)] = 200
    """Samples that report 0.0 after a score reached hold_level (unless a higher score
    breaks through)."""

    def build(self) -> AnomalyDetector:
        return AnomalyDetector(self)


class AnomalyDetector:
    """One channel's detector. ``score`` returns None while it warms up: ``warmup``
    residuals for the residual scorer, then ``likelihood_warmup`` for the likelihood's
    long-run statistics (the range novelty learns the range all along); then it scores.
    Not thread-safe."""

    __slots__ = (
        "_held",
        "_held_peak",
        "_last",
        "_last_likelihood",
        "_last_novelty",
        "_likelihood",
        "_range",
        "_residual",
        "_settings",
    )

    def __init__(self, settings: LikelihoodScoreConfig | None = None) -> None:
        s = settings or LikelihoodScoreConfig()
        self._settings = s
        self._residual = ResidualScorer(s.residual_settings())
        self._likelihood = AnomalyLikelihood(
            s.short_window, s.likelihood_alpha, s.likelihood_warmup
        )
        self._range = RangeNovelty(s.range_weight)
        self._held = 0
        self._held_peak = 0.0
        # The last score's parts, kept as floats: parts() builds the mapping on demand.
        self._last: float | None = None
        self._last_likelihood = 0.0
        self._last_novelty = 0.0

    @property
    def residual(self) -> ResidualScorer:
        """The residual stage (its ``is_warm``: scores are no longer None)."""
        return self._residual

    @property
    def is_warm(self) -> bool:
        """Scores are no longer None: the residual stage has seen ``warmup`` residuals
        and the likelihood stage ``likelihood_warmup`` surprises after them
        (``warmup_steps``)."""
        return self._likelihood.is_warm

    @property
    def warmup_steps(self) -> int:
        """Model steps with a forecast (residuals) before the first score: warmup +
        likelihood_warmup."""
        return self._settings.warmup + self._settings.likelihood_warmup

    def score(self, ts: float, actual: float, forecast: float) -> float | None:
        """Score ``actual`` (read at ``ts``, unused here) against the one-step
        ``forecast`` made for it, then learn from it: None until ``is_warm`` (every stage
        only learns: no alarm rule can see a score from statistics that are not ready),
        then >= 0. Raises ValueError for a non-finite reading or forecast."""
        was_warm = self._residual.is_warm
        surprise = self._residual.score(actual, forecast)
        if not was_warm:
            self._range.score(actual)
            return None
        was_warm = self._likelihood.is_warm
        likelihood = self._likelihood.score(math.log1p(surprise))
        novelty = self._range.score(actual)
        result = likelihood if likelihood >= novelty else novelty
        if not was_warm:
            return None
        self._last_likelihood = likelihood
        self._last_novelty = novelty
        if self._held > 0 and result <= self._held_peak:
            self._held -= 1
            self._last = 0.0
            return 0.0
        # Not holding, or a bigger event than the one that started the hold: a spike
        # right after a small detection must not vanish into the hold.
        if result >= self._settings.hold_level:
            self._held = self._settings.hold_samples
            self._held_peak = result
        self._last = result
        return result

    def parts(self) -> Mapping[str, float]:
        last = self._last
        if last is None:
            return {}
        r = self._residual
        return {
            "residual": r.last_residual,
            "spread": r.last_scale,
            "likelihood": self._last_likelihood,
            "novelty": self._last_novelty,
            "score": last,
        }
