"""Resampling accepted readings onto the model's sample grid.

The grid is ``k * period_s`` for integer k (UNIX seconds), so every channel with the same
period shares it. Each grid point between two consecutive readings is linearly
interpolated from them; a gap longer than ``max_gap_s`` is not interpolated across:
the window must restart (``is_restart``) and the gap is counted. See docs/cleaning.md.

Output goes into two preallocated arrays (``out_ts``, ``out_values``); ``push`` returns
how many entries are valid. Nothing is allocated per reading.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

DEFAULT_GAP_PERIODS = 10
"""max_gap_s when not configured, in sample periods (as ChannelConfig documents)."""


class Resampler:
    """Resamples one channel's accepted readings.

    period_s: grid period in seconds (> 0); None: pass-through, each reading is emitted
        as it is (still subject to the gap check).
    max_gap_s: seconds (> 0); a longer interval between two readings restarts the window.
        None: ``DEFAULT_GAP_PERIODS`` periods, or no gap check in pass-through mode.

    Raises ValueError for a non-positive period or gap, and from ``push`` for a timestamp
    that is not after the previous one (the cleaner rejects those before).
    Not thread-safe.
    """

    __slots__ = (
        "_next_k",
        "_prev_ts",
        "_prev_value",
        "capacity",
        "emitted",
        "gaps",
        "is_restart",
        "max_gap_s",
        "out_ts",
        "out_values",
        "period_s",
    )

    def __init__(self, period_s: float | None, max_gap_s: float | None = None) -> None:
        if period_s is not None and not period_s > 0.0:
            raise ValueError(f"period_s must be > 0, got {period_s}")
        if max_gap_s is not None and not max_gap_s > 0.0:
            raise ValueError(f"max_gap_s must be > 0, got {max_gap_s}")
        if period_s is not None and max_gap_s is None:
            max_gap_s = DEFAULT_GAP_PERIODS * period_s
        self.period_s = period_s
        self.max_gap_s = max_gap_s
        # Without a gap longer than max_gap_s, one push spans at most max_gap_s / period_s
        # grid points (+1 for rounding at both ends).
        capacity = 1 if period_s is None or max_gap_s is None else int(max_gap_s / period_s) + 2
        self.capacity = capacity
        """Most grid points one push can emit."""
        self.out_ts: npt.NDArray[np.float64] = np.zeros(capacity)
        """Grid times (UNIX seconds) of the last push: valid up to the count it returned."""
        self.out_values: npt.NDArray[np.float64] = np.zeros(capacity)
        """Values at those times, channel units."""
        self.is_restart = False
        """The last push started a new segment (first reading, or after a gap): clear the
        window before appending this push's output."""
        self.gaps = 0
        """Gaps longer than max_gap_s seen (each restarted the window)."""
        self.emitted = 0
        """Grid points emitted in total."""
        self._prev_ts: float | None = None
        self._prev_value = 0.0
        self._next_k = 0

    def take_restart(self) -> bool:
        """``is_restart``, then cleared: True once after a push that started a new segment."""
        restart = self.is_restart
        self.is_restart = False
        return restart

    def push(self, ts: float, value: float) -> int:
        """Add an accepted reading (UNIX seconds, channel units); returns the number n of
        points now in ``out_ts[:n]`` / ``out_values[:n]`` (0 to ``capacity``)."""
        prev = self._prev_ts
        restart = prev is None
        if prev is not None:
            if not ts > prev:
                raise ValueError(f"timestamps must increase: {ts} after {prev}")
            if self.max_gap_s is not None and ts - prev > self.max_gap_s:
                self.gaps += 1
                restart = True
        self.is_restart = restart
        period = self.period_s
        if period is None:
            self.out_ts[0] = ts
            self.out_values[0] = value
            self._prev_ts = ts
            self._prev_value = value
            self.emitted += 1
            return 1
        # Float slack in grid units: a reading stamped k * period_s, give or take a few
        # ulps of a UNIX time, is on the grid.
        tol = 1e-13 * abs(ts) + 1e-12
        k_end = math.floor((ts + tol) / period)
        n = 0
        if restart:
            if k_end * period >= ts - tol:  # on the grid: it starts the new window
                self.out_ts[0] = k_end * period
                self.out_values[0] = value
                n = 1
            self._next_k = k_end + 1
        else:
            assert prev is not None
            k = self._next_k
            span = ts - prev
            v0 = self._prev_value
            dv = value - v0
            out_ts = self.out_ts
            out_values = self.out_values
            while k <= k_end:
                g = k * period
                frac = (g - prev) / span
                frac = 0.0 if frac < 0.0 else 1.0 if frac > 1.0 else frac
                out_ts[n] = g
                out_values[n] = v0 + dv * frac
                n += 1
                k += 1
            self._next_k = k
        self._prev_ts = ts
        self._prev_value = value
        self.emitted += n
        return n
