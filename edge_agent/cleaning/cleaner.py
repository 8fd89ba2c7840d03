"""Per-channel plausibility checks: each reading is accepted or rejected with a reason.

One ``ChannelCleaner`` per channel, called once per reading, in reading order. The checks
run in this order and the first that fails names the reason:

1. ``not_finite``      value or timestamp is NaN or ±inf
2. ``time_backwards``  timestamp before the last accepted reading's
3. ``duplicate_ts``    timestamp equal to the last accepted reading's
4. ``range``           value outside [min, max]
5. ``stuck``           the value has not changed for stuck_after_s (the channel is stuck)
6. ``rate``            |Δvalue / Δt| against the last accepted reading above max_rate_per_s
7. ``spike``           more than spike_k robust deviations from the median of the window

Every rejection is counted by reason (``rejected``); every acceptance in ``accepted``.
Nothing is dropped without being counted. See docs/cleaning.md.

The per-reading path allocates no containers: the spike window is a preallocated ring
plus a sorted copy kept up to date with ``bisect`` (O(spike_window) per reading, about
2 µs for the default window of 9 on a desktop CPU).
"""

from __future__ import annotations

import math
import time
from bisect import bisect_left, insort
from enum import StrEnum

from edge_agent.alarms.model import HealthCondition
from edge_agent.cleaning.config import CleaningConfig
from edge_agent.reading import MAX_FUTURE_S

_MAD_TO_SIGMA = 1.4826
"""MAD × this estimates the standard deviation of Gaussian noise."""
_MEAN_AD_TO_SIGMA = 1.2533
"""Mean absolute deviation × this estimates it too; the fallback when the MAD is 0."""

_SCALE_ALPHA = 0.05
"""Weight of each window's spread in the running noise scale (~20-reading memory)."""
_SCALE_WARMUP = 10
"""Full windows seen before the spike check judges anything."""

_HEALTHY = frozenset[HealthCondition]()
_STALE = frozenset({HealthCondition.STALE})
_STUCK = frozenset({HealthCondition.STUCK})
_STALE_STUCK = frozenset({HealthCondition.STALE, HealthCondition.STUCK})


class RejectReason(StrEnum):
    """Why a reading was rejected; the value is the counter's name in the status."""

    NOT_FINITE = "not_finite"
    TIME_BACKWARDS = "time_backwards"
    DUPLICATE_TS = "duplicate_ts"
    RANGE = "range"
    STUCK = "stuck"
    RATE = "rate"
    SPIKE = "spike"
    TIME_IMPLAUSIBLE = "time_implausible"


class ChannelCleaner:
    """Checks one channel's readings (``CleaningConfig``) and keeps its health.

    ``start_ts``: UNIX seconds at which the channel was expected to start delivering; with
    it, a channel that never delivers becomes stale stale_after_s later. Without it, a
    channel is only stale once it has delivered and then stopped.

    Not thread-safe: one caller (the pipeline) per cleaner.
    """

    __slots__ = (
        "_filled",
        "_last_value",
        "_max",
        "_max_rate",
        "_min",
        "_min_dev",
        "_pos",
        "_ring",
        "_run_since",
        "_run_value",
        "_scale",
        "_scale_count",
        "_scratch",
        "_sorted",
        "_spike_k",
        "_stale_after",
        "_start_ts",
        "_stuck_after",
        "_stuck_ts",
        "_ts_ceiling",
        "_window",
        "accepted",
        "config",
        "is_stuck",
        "last_accepted_ts",
        "last_accepted_value",
        "rejected",
    )

    def __init__(self, config: CleaningConfig, start_ts: float | None = None) -> None:
        self.config = config
        self.accepted = 0
        """Readings accepted so far."""
        self.rejected: dict[RejectReason, int] = dict.fromkeys(RejectReason, 0)
        """Readings rejected so far, by reason (every reason present, 0 when none)."""
        self.last_accepted_ts: float | None = None
        """UNIX seconds of the last accepted reading; None before the first."""
        self.last_accepted_value: float | None = None
        self._last_value = 0.0  # last_accepted_value as a plain float for the rate check
        self.is_stuck = False
        """The value has not changed for stuck_after_s; cleared by the next change."""
        self._start_ts = start_ts
        self._min = -math.inf if config.min is None else config.min
        self._max = math.inf if config.max is None else config.max
        self._max_rate = config.max_rate_per_s
        self._stuck_after = config.stuck_after_s
        self._stuck_ts = -math.inf
        self._stale_after = config.stale_after_s
        self._run_value = math.nan  # never equal to a reading: the first starts a run
        self._run_since = 0.0
        self._spike_k = config.spike_k
        self._min_dev = config.spike_min_deviation
        self._window = config.spike_window
        self._ring = [0.0] * self._window
        self._sorted: list[float] = []
        self._scratch = [0.0] * self._window
        self._pos = 0
        self._filled = 0
        self._scale = 0.0  # running noise scale, channel units
        self._scale_count = 0
        self._ts_ceiling = -math.inf  # set by the first reading (_is_future)

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())

    def check(self, ts: float, value: float) -> RejectReason | None:
        """Check one reading (``ts`` UNIX seconds, ``value`` in channel units).

        Returns None when accepted (it becomes the reference for the next reading) or
        the reason it was rejected; either way it is counted. Never raises.
        """
        # x - x is 0.0 for a finite x and NaN otherwise: no call on the per-reading path.
        if not (value - value == 0.0 and ts - ts == 0.0):
            return self._reject(RejectReason.NOT_FINITE)
        if ts > self._ts_ceiling and self._is_future(ts):
            return self._reject(RejectReason.TIME_IMPLAUSIBLE)
        last_ts = self.last_accepted_ts
        if last_ts is not None:
            if ts < last_ts:
                return self._reject(RejectReason.TIME_BACKWARDS)
            if ts == last_ts:
                return self._reject(RejectReason.DUPLICATE_TS)
        if value < self._min or value > self._max:
            return self._reject(RejectReason.RANGE)
        if self._stuck_after is not None:
            # A run of equal values holds only while readings keep coming: the same
            # value after a silence longer than stale_after_s is a new run, not a stuck
            # sensor (2-decimal readings repeat by chance).
            seen = self._stuck_ts if last_ts is None or self._stuck_ts > last_ts else last_ts
            if value == self._run_value and (
                self._stale_after is None or ts - seen <= self._stale_after
            ):
                if ts - self._run_since >= self._stuck_after:
                    self.is_stuck = True
                    self._stuck_ts = ts
                    return self._reject(RejectReason.STUCK)
            else:
                self._run_value = value
                self._run_since = ts
                self.is_stuck = False
        if (
            self._max_rate is not None
            and last_ts is not None
            and abs(value - self._last_value) > self._max_rate * (ts - last_ts)
        ):
            return self._reject(RejectReason.RATE)
        if self._spike_k is not None and self._is_spike(value, self._spike_k):
            return self._reject(RejectReason.SPIKE)
        self.accepted += 1
        self.last_accepted_ts = ts
        self.last_accepted_value = value
        self._last_value = value
        return None

    def is_stale(self, now: float) -> bool:
        """No accepted reading for more than stale_after_s before ``now`` (UNIX seconds).
        A stuck reading counts as one here: the sensor is talking, and "stuck" says
        what is wrong with it (one cause, one condition).

        Always False when stale_after_s is not configured.
        """
        if self._stale_after is None:
            return False
        ref = self.last_accepted_ts if self.last_accepted_ts is not None else self._start_ts
        if self._stuck_ts > (-math.inf if ref is None else ref):
            ref = self._stuck_ts
        return ref is not None and now - ref > self._stale_after

    def health(self, now: float) -> frozenset[HealthCondition]:
        """The channel's cleaning-side health at ``now``: stale and/or stuck (shared,
        immutable sets; no allocation). "disconnected" comes from the source."""
        if self.is_stale(now):
            return _STALE_STUCK if self.is_stuck else _STALE
        return _STUCK if self.is_stuck else _HEALTHY

    def status(self, now: float) -> dict[str, object]:
        """A JSON-ready snapshot for /status."""
        return {
            "accepted": self.accepted,
            "rejected": {reason.value: n for reason, n in self.rejected.items()},
            "last_accepted_ts": self.last_accepted_ts,
            "is_stuck": self.is_stuck,
            "is_stale": self.is_stale(now),
        }

    def _is_future(self, ts: float) -> bool:
        """Whether ``ts`` is more than MAX_FUTURE_S ahead of the wall clock. The clock is
        read only when a reading passes the last ceiling (about once per MAX_FUTURE_S
        of data time), so the per-reading cost is one comparison."""
        self._ts_ceiling = time.time() + MAX_FUTURE_S
        return ts > self._ts_ceiling

    def _reject(self, reason: RejectReason) -> RejectReason:
        self.rejected[reason] += 1
        return reason

    def _is_spike(self, x: float, k: float) -> bool:
        """Put ``x`` in the window, then test it against the window's median and MAD."""
        w = self._window
        ring = self._ring
        ordered = self._sorted
        if self._filled < w:
            ring[self._pos] = x
            insort(ordered, x)
            self._filled += 1
            self._pos = (self._pos + 1) % w
            if self._filled < w:
                return False  # too few readings to judge
        else:
            old = ring[self._pos]
            ring[self._pos] = x
            self._pos = (self._pos + 1) % w
            del ordered[bisect_left(ordered, old)]
            insort(ordered, x)
        med = _median(ordered, w)
        dev = abs(x - med)
        scratch = self._scratch
        for i in range(w):
            scratch[i] = abs(ordered[i] - med)
        scratch.sort()  # in place; binary insertion sort for small lists, no allocation
        mad = _median(scratch, w)
        sigma = _MAD_TO_SIGMA * mad if mad > 0.0 else _MEAN_AD_TO_SIGMA * sum(scratch) / w
        # The MAD of a few readings is a noisy estimate (with 9 readings, k = 5 would
        # reject ~1 % of Gaussian noise); its running mean is not (~0.02 %). It still
        # follows a lasting change of the noise level within ~1 / _SCALE_ALPHA readings.
        self._scale_count += 1
        n = self._scale_count
        # A plain mean over the first windows, then the running mean.
        scale = self._scale + max(_SCALE_ALPHA, 1.0 / n) * (sigma - self._scale)
        self._scale = scale
        if n < _SCALE_WARMUP:
            return False  # the noise scale is not known well enough yet
        # A window without any spread: any change beyond spike_min_deviation is a spike
        # until it lasts long enough to take over the median.
        return dev > self._min_dev and (scale == 0.0 or dev > k * scale)


def _median(ordered: list[float], n: int) -> float:
    mid = n // 2
    if n % 2:
        return ordered[mid]
    return 0.5 * (ordered[mid - 1] + ordered[mid])
