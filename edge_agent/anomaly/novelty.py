"""Range novelty: a reading beyond every level the channel has ever had.

A machine that stops, a sensor that drops to a value never seen before, a load that
settles at a new level: the forecaster follows such a change within a few samples, so
its residual stops being surprising while the level itself still is. This stage keeps
the lowest and highest reading seen and scores how far a reading lies outside that
range, in percent of its width, before the reading widens it.
"""

from __future__ import annotations

import math


class RangeNovelty:
    """weight >= 0: score per percent of the range's width beyond it (4: a reading 0.75 %
    of the width above the highest ever scores 3). 0.0 inside the range, and until two
    different readings have been seen."""

    __slots__ = ("_high", "_low", "_weight")

    def __init__(self, weight: float) -> None:
        if not weight >= 0.0:
            raise ValueError(f"weight must be >= 0, got {weight}")
        self._weight = weight
        self._low = math.inf
        self._high = -math.inf

    def score(self, value: float) -> float:
        """Score ``value`` (channel units), then widen the range to include it."""
        low, high = self._low, self._high
        result = 0.0
        if high > low:
            beyond = max(value - high, low - value)
            if beyond > 0.0:
                result = self._weight * 100.0 * beyond / (high - low)
        if value < low:
            self._low = value
        if value > high:
            self._high = value
        return result
