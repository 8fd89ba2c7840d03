"""Level novelty: a reading far from every level the channel has had for a long time.

A machine that stops, a sensor that drops to a value never seen before, a load that
settles at a new level: the forecaster follows such a change within a few samples, so
its residual stops being surprising while the level itself still is. This stage keeps
an exponentially weighted mean and variance of the readings (a ~1/alpha-sample memory)
and scores the two-sided tail probability of the reading under a normal model, as
-log10(p), before the reading is learned.
"""

from __future__ import annotations

import math

_SQRT2 = math.sqrt(2.0)
_MIN_TAIL = 1e-300


class LevelNovelty:
    """alpha in (0, 1]; warmup >= 1 readings learned (plain mean/variance) before any
    score; until then 0.0."""

    __slots__ = ("_alpha", "_count", "_mean", "_variance", "_warmup")

    def __init__(self, alpha: float, warmup: int) -> None:
        if warmup < 1 or not 0.0 < alpha <= 1.0:
            raise ValueError("warmup must be >= 1, alpha in (0, 1]")
        self._alpha = alpha
        self._warmup = warmup
        self._count = 0
        self._mean = 0.0
        self._variance = 0.0

    def score(self, value: float) -> float:
        """-log10 of the two-sided tail probability of ``value`` (channel units)."""
        self._count += 1
        delta = value - self._mean
        if self._count <= self._warmup:
            self._mean += delta / self._count
            self._variance += (delta * (value - self._mean) - self._variance) / self._count
            return 0.0
        variance = self._variance
        result = 0.0
        if variance > 0.0:
            z = abs(delta) / math.sqrt(variance)
            result = -math.log10(max(math.erfc(z / _SQRT2), _MIN_TAIL))
        self._mean += self._alpha * delta
        self._variance += self._alpha * (delta * delta - variance)
        return result
