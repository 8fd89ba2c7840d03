"""A channel's samples as means over the model's period: what a bundle with
``input.sample_period_s`` is fed (docs/ota.md, "The model's period").

The periods are the store's summary intervals exactly: aligned
``[floor(ts / period_s) * period_s, + period_s)``, a period closed by the first sample
of a later one, its mean updated the way ``SummaryAccumulator`` updates a summary's
mean (same operations in the same order), so with ``summary_interval_s`` equal to the
model's period the device feeds the model the very series the cloud trained it on
(``cloud_sync.training.dataset``). A period without a sample is a gap there too: the
next closed period is flagged ``is_gap`` and the model's window restarts.

Per sample: a compare, a subtract, a divide and two adds; nothing allocated.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

_INF = math.inf


class PeriodMean:
    """Running mean of the open period of one channel.

    period_s: seconds (> 0, finite; ValueError otherwise).
    After ``push`` returned True: ``out_ts`` (start of the period that closed, UNIX
    seconds), ``out_value`` (its mean), ``out_count`` (its samples) and ``is_gap`` (the
    period before it had no sample, or it is the first one).
    """

    __slots__ = (
        "_end",
        "_mean",
        "_n",
        "_prev_start",
        "_start",
        "closed",
        "is_gap",
        "out_count",
        "out_ts",
        "out_value",
        "period_s",
    )

    def __init__(self, period_s: float) -> None:
        if not period_s > 0.0 or not math.isfinite(period_s):
            raise ValueError(f"period_s must be a positive number of seconds: {period_s}")
        self.period_s = float(period_s)
        self._start = -_INF
        self._end = -_INF
        self._n = 0
        self._mean = 0.0
        self._prev_start = -_INF
        self.closed = 0
        """Periods closed so far."""
        self.out_ts = 0.0
        self.out_value = 0.0
        self.out_count = 0
        self.is_gap = True

    def push(self, ts: float, value: float) -> bool:
        """Add a sample (increasing ``ts``); True when it closed the open period."""
        closed = False
        if ts >= self._end:
            n = self._n
            if n:
                start = self._start
                self.out_ts = start
                self.out_value = self._mean
                self.out_count = n
                # Consecutive periods start period_s apart; half a period of slack
                # absorbs the float rounding of floor(ts / p) * p.
                self.is_gap = start - self._prev_start > 1.5 * self.period_s
                self._prev_start = start
                self.closed += 1
                closed = True
            self._start = math.floor(ts / self.period_s) * self.period_s
            self._end = self._start + self.period_s
            self._n = 0
            self._mean = 0.0
        n = self._n + 1
        self._n = n
        self._mean += (value - self._mean) / n
        return closed

    def reset(self) -> None:
        """Forget the open period and the previous one (the next period closed is a gap)."""
        self._start = -_INF
        self._end = -_INF
        self._n = 0
        self._mean = 0.0
        self._prev_start = -_INF


def feed_refusal(model_period_s: float | None, feeds: Mapping[str, float | None]) -> str | None:
    """Why a model with period ``model_period_s`` cannot be fed from channels delivering
    a sample every ``feeds[name]`` seconds (None: not known yet), or None when it can:
    a period mean needs at least one sample per period, so the model's period must not
    be shorter than any channel's. A scale-free model (None) runs at each channel's own
    period and fits every channel."""
    if model_period_s is None:
        return None
    slower = sorted(
        (name, period)
        for name, period in feeds.items()
        if period is not None and period > model_period_s * (1.0 + 1e-9)
    )
    if not slower:
        return None
    listed = ", ".join(f"{name} every {period:g} s" for name, period in slower)
    return (
        f"the model's period is {model_period_s:g} s (input.sample_period_s) but "
        f"{'a channel delivers' if len(slower) == 1 else 'channels deliver'} a sample "
        f"less often ({listed}): it cannot be fed at its period"
    )
