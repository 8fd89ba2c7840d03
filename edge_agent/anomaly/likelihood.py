"""Anomaly likelihood: is the recent surprise unusual for this channel?

The forecaster's normalized residual alone alarms on every noisy stretch. Following
Numenta's anomaly likelihood (Ahmad et al. 2017), the score asks a second question: is
the mean of the last ``short_window`` surprises (log1p of the normalized residual) far
in the upper tail of the distribution those surprises have had over the long run (an
exponentially weighted mean and variance with weight ``alpha``, a ~1/alpha-sample
memory)? The answer is a tail probability p under a normal model, reported as
-log10(p): 2 means "1 in 100", 3 "1 in 1,000".

Per sample: a ring of ``short_window`` floats written in place and scalar math; nothing
allocated beyond Python floats.
"""

from __future__ import annotations

import math

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
