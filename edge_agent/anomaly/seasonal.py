"""Seasonal baseline: what the channel usually reads at this time of day, or of week.

The forecaster sees a short window (32 samples: 16 h of 30-minute taxi counts), so a
holiday whose demand is ordinary in level and shape for a weekday, but not for that
hour of that weekday, is invisible to its residual. This baseline keeps, per slot of a
period (``slots`` slots of ``period_s`` seconds, by the reading's time), an
exponentially weighted mean of the readings that fell in it; its "forecast" for a
reading is its slot's mean, once the slot has seen ``min_count`` readings. A residual
scorer and a likelihood on top of it (``EnsembleDetector``) turn the miss into a score.

Per sample: one slot index from the time, two array reads and two writes; the state is
two preallocated arrays of ``slots`` numbers.
"""

from __future__ import annotations

from array import array

_NONE = float("nan")


class SeasonalBaseline:
    """period_s > 0, slots >= 1, alpha in (0, 1]: weight of a new reading in its slot's
    mean once the slot has seen 1 / alpha readings (a plain mean before); min_count >= 1
    readings in a slot before it forecasts."""

    __slots__ = ("_alpha", "_counts", "_means", "_min_count", "_period", "_slot_s")

    def __init__(self, period_s: float, slots: int, alpha: float, min_count: int) -> None:
        if not period_s > 0 or slots < 1 or not 0.0 < alpha <= 1.0 or min_count < 1:
            raise ValueError("period_s must be > 0, slots >= 1, alpha in (0, 1], min_count >= 1")
        self._period = float(period_s)
        self._slot_s = float(period_s) / slots
        self._alpha = alpha
        self._min_count = min_count
        self._means = array("d", [0.0]) * slots
        self._counts = array("l", [0]) * slots

    @property
    def state_bytes(self) -> int:
        return self._means.itemsize * len(self._means) + self._counts.itemsize * len(self._counts)

    def slot(self, ts: float) -> int:
        """The slot of time ``ts`` (Unix seconds)."""
        return int((ts % self._period) / self._slot_s) % len(self._means)

    def forecast(self, slot: int) -> float:
        """The slot's mean, or NaN while it has seen fewer than ``min_count`` readings."""
        return self._means[slot] if self._counts[slot] >= self._min_count else _NONE

    def learn(self, slot: int, value: float) -> None:
        count = self._counts[slot] + 1
        self._counts[slot] = count
        weight = 1.0 / count
        if weight < self._alpha:
            weight = self._alpha
        self._means[slot] += weight * (value - self._means[slot])
