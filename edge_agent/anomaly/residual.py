"""The "residual" score method: how surprising a reading is, given what the model forecast.

For each new reading x_t of a channel and the one-step-ahead forecast f_t made from the
window before it, the residual is r_t = |x_t - f_t|. The scorer keeps a running
estimate s of the typical residual (an exponentially weighted mean of |r|), and the
score is

    score_t = r_t / max(s, floor_t),   floor_t = max(min_spread_abs, min_spread_rel * |x_t|)

computed *before* s absorbs r_t. So a score of 1 is an ordinary miss, and for
Gaussian residuals (mean |r| = 0.8 sigma) a score of 5 is about a 4-sigma miss.
While updating, r_t is capped at ``clip`` * s so that one spike does not inflate s
and mask the samples after it; a lasting change of behaviour is still absorbed at the
rate ``alpha``. During the first ``warmup`` residuals the scorer only learns and
returns 0.0 (``is_warm`` is False).

Units: the score is dimensionless, >= 0. See docs/anomaly-score.md.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import Field

from edge_agent.anomaly.base import ScoreMethodConfig

_isfinite = math.isfinite


@dataclass(frozen=True, slots=True)
class ScoreSettings:
    """Scorer tuning. alpha in (0, 1]: weight of each new residual (0.02 ~ a 50-sample
    memory); warmup >= 1 residuals before scores are emitted; clip > 0: cap on a residual's
    influence, in spreads; floors in channel units (abs) and relative to |reading| (rel)."""

    alpha: float = 0.02
    warmup: int = 16
    clip: float = 4.0
    min_spread_abs: float = 1e-9
    min_spread_rel: float = 1e-4

    def __post_init__(self) -> None:
        if not 0.0 < self.alpha <= 1.0:
            raise ValueError(f"alpha must be in (0, 1], got {self.alpha}")
        if self.warmup < 1:
            raise ValueError(f"warmup must be >= 1, got {self.warmup}")
        if not self.clip > 0.0:
            raise ValueError(f"clip must be > 0, got {self.clip}")
        if self.min_spread_abs <= 0.0 or self.min_spread_rel < 0.0:
            raise ValueError("min_spread_abs must be > 0 and min_spread_rel >= 0")


class ResidualScorer:
    """Scores one channel's readings against its one-step forecasts. Not thread-safe."""

    __slots__ = (
        "_alpha",
        "_clip",
        "_count",
        "_min_spread_abs",
        "_min_spread_rel",
        "_settings",
        "_spread",
        "_warmup",
        "last_residual",
        "last_scale",
    )

    def __init__(self, settings: ScoreSettings | None = None) -> None:
        s = self._settings = settings or ScoreSettings()
        # The settings as plain attributes: the per-sample path reads them directly.
        self._alpha = s.alpha
        self._clip = s.clip
        self._warmup = s.warmup
        self._min_spread_abs = s.min_spread_abs
        self._min_spread_rel = s.min_spread_rel
        self._count = 0
        self._spread = 0.0
        self.last_residual = 0.0
        """The last |actual - forecast|, channel units (the parts of an alarm's reason)."""
        self.last_scale = 0.0
        """The typical |residual| the last score was divided by (0.0 while warming)."""

    @property
    def is_warm(self) -> bool:
        return self._count >= self._warmup

    @property
    def spread(self) -> float:
        """Current typical |residual|, channel units (0.0 before the first residual)."""
        return self._spread

    def score(self, actual: float, forecast: float) -> float:
        """Score ``actual`` against the forecast made for it, then learn from it.

        Returns 0.0 during warm-up. Raises ValueError for a non-finite input (the
        cleaning stage must not pass NaN/inf on).
        """
        residual = abs(actual - forecast)
        if not _isfinite(residual):
            raise ValueError(f"non-finite reading or forecast: {actual!r}, {forecast!r}")
        self.last_residual = residual
        count = self._count + 1
        self._count = count
        if count <= self._warmup:
            # Plain running mean while warming: every early residual counts equally.
            self._spread += (residual - self._spread) / count
            return 0.0
        # Comparisons rather than max()/min(): the same values, without two calls.
        floor = self._min_spread_rel * abs(actual)
        if floor < self._min_spread_abs:
            floor = self._min_spread_abs
        spread = self._spread
        if spread < floor:
            spread = floor
        self.last_scale = spread
        capped = self._clip * spread
        self._spread += self._alpha * ((residual if residual <= capped else capped) - self._spread)
        return residual / spread


class ResidualStageConfig(ScoreMethodConfig):
    """The residual stage's keys: every method built on the one-step residual has them."""

    alpha: Annotated[float, Field(gt=0, le=1)] = 0.02
    """Weight of each new residual in its typical size (0.02: a ~50-sample memory)."""
    warmup: Annotated[int, Field(ge=1)] = 16
    """Residuals learned before the first score (None until then)."""
    clip: Annotated[float, Field(gt=0)] = 4.0
    """Cap on one residual's influence on the typical size, in typical sizes."""

    def residual_settings(self) -> ScoreSettings:
        return ScoreSettings(alpha=self.alpha, warmup=self.warmup, clip=self.clip)


class ResidualScoreConfig(ResidualStageConfig):
    """method = "residual" (the default): the one-step residual over its typical size
    (1 = an ordinary miss)."""

    method: Literal["residual"] = "residual"
    """The score method (docs/anomaly-score.md)."""

    def build(self) -> ResidualMethod:
        return ResidualMethod(self.residual_settings())


class ResidualMethod:
    """The "residual" method as the pipeline drives it: a ResidualScorer's scores, None
    until it is warm. Not thread-safe."""

    __slots__ = ("_last", "scorer")

    def __init__(self, settings: ScoreSettings) -> None:
        self.scorer = ResidualScorer(settings)
        self._last: float | None = None

    @property
    def is_warm(self) -> bool:
        return self.scorer.is_warm

    def score(self, ts: float, actual: float, forecast: float) -> float | None:
        scorer = self.scorer
        result = scorer.score(actual, forecast)
        self._last = out = result if scorer._count >= scorer._warmup else None
        return out

    def parts(self) -> Mapping[str, float]:
        last = self._last
        if last is None:
            return {}
        s = self.scorer
        return {"residual": s.last_residual, "spread": s.last_scale, "score": last}
