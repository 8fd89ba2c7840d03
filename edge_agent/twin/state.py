"""The twin's starting state from interval summaries: the device's own store and the
cloud's synced copy hold the same summaries, so both roll forward from the same rows.

Each channel's summaries are merged into the twin's periods (count-weighted means of
the intervals inside each period, aligned to multiples of the period); the state is the
last ``window_steps`` periods that every channel has, back to back.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from edge_agent.twin.errors import TwinStateIncomplete

FloatArray = npt.NDArray[np.float64]


class IntervalMean(NamedTuple):
    """The part of an interval summary the twin reads."""

    channel: str
    start: float
    interval_s: float
    samples: int
    mean: float


def history_from_summaries(
    channels: list[str], summaries: Iterable[IntervalMean], period_s: float, window: int
) -> tuple[FloatArray, float]:
    """(window, channels) period means in ``channels`` order, and the end time of the
    last period (UNIX s).

    Raises TwinStateIncomplete naming the channels without ``window`` periods back to
    back, or an interval longer than the period.
    """
    sums: dict[str, dict[int, list[float]]] = {c: {} for c in channels}
    for s in summaries:
        if s.channel not in sums or s.samples <= 0 or not math.isfinite(s.mean):
            continue
        if s.interval_s > period_s * (1 + 1e-9):
            raise TwinStateIncomplete(
                f"summaries of {s.interval_s:g} s are longer than the twin's "
                f"{period_s:g} s period; set [store] summary_interval_s to divide it"
            )
        k = math.floor(s.start / period_s + 1e-9)
        acc = sums[s.channel].setdefault(k, [0.0, 0.0, 0.0])
        acc[0] += s.mean * s.samples
        acc[1] += s.samples
        acc[2] += s.interval_s
    # A period counts once its intervals cover it (the open one is still filling).
    full = {
        c: {k for k, a in per.items() if a[2] >= period_s * (1 - 1e-9)} for c, per in sums.items()
    }
    common = set.intersection(*full.values()) if full else set()
    last = max(common) if common else None
    missing = [
        c
        for c in channels
        if last is None or any(k not in full[c] for k in range(last - window + 1, last + 1))
    ]
    if last is None or missing:
        raise TwinStateIncomplete(
            f"the twin needs the last {window} periods of {period_s:g} s of "
            f"{missing or channels}; per-channel forecasts continue without it"
        )
    rows = [
        [sums[c][k][0] / sums[c][k][1] for c in channels]
        for k in range(last - window + 1, last + 1)
    ]
    return np.array(rows), (last + 1) * period_s
