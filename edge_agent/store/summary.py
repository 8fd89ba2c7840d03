"""Per-channel, per-interval summaries of readings, forecast errors and anomaly scores.

One ``SummaryAccumulator`` per channel. Intervals are fixed and aligned:
``start = floor(ts / interval_s) * interval_s``, covering ``[start, start + interval_s)``.
The accumulator keeps running sums only (Welford for mean/variance), so a sample costs a
handful of float operations and allocates nothing; a ``Summary`` is built once per
interval, when it closes. ``upsert_summary`` writes a closed one to the ``summaries``
table, merged with what is stored for the same interval.

The accumulators live in memory, but what they summarise does not: ``rebuild_open``
feeds them, at start, the committed readings that no stored summary covers yet (those
after the channel's latest summary), so a kill -9 in the middle of an interval loses no
reading from the summaries (and so from the cloud): the interval is closed later with
the readings from before the kill and those after the restart.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from edge_agent.store.blocks import blocks_after

_INF = math.inf


@dataclass(frozen=True, slots=True)
class Summary:
    """The statistics of one channel over one interval ``[start, start + interval_s)``.

    Times are UNIX seconds. ``std`` is the population standard deviation (ddof=0).
    Forecast errors are ``value - forecast`` for the samples that had a forecast
    (``error_count`` of them; the ``error_*`` fields are None when there were none).
    ``score_max`` is None when no sample carried an anomaly score.
    """

    channel: str
    start: float
    interval_s: float
    count: int
    min: float
    max: float
    mean: float
    std: float
    last: float
    last_ts: float
    error_count: int = 0
    error_mean: float | None = None
    """Mean signed error (bias), channel units."""
    error_mae: float | None = None
    error_rmse: float | None = None
    error_max_abs: float | None = None
    score_max: float | None = None

    @property
    def end(self) -> float:
        return self.start + self.interval_s

    def to_dict(self) -> dict[str, Any]:
        """The JSON payload sent to the cloud (one outbox row of kind "summary")."""
        return {
            "channel": self.channel,
            "start": self.start,
            "end": self.end,
            "interval_s": self.interval_s,
            "count": self.count,
            "min": self.min,
            "max": self.max,
            "mean": self.mean,
            "std": self.std,
            "last": self.last,
            "last_ts": self.last_ts,
            "error_count": self.error_count,
            "error_mean": self.error_mean,
            "error_mae": self.error_mae,
            "error_rmse": self.error_rmse,
            "error_max_abs": self.error_max_abs,
            "score_max": self.score_max,
        }

    def merge(self, other: Summary) -> Summary:
        """The summary of both sample sets (same channel and interval), exact up to
        rounding: used when an interval was closed early (shutdown) and more samples of
        it arrive after a restart. Raises ValueError for a different channel or interval.
        """
        if (other.channel, other.start, other.interval_s) != (
            self.channel,
            self.start,
            self.interval_s,
        ):
            raise ValueError("can only merge summaries of the same channel and interval")
        n = self.count + other.count
        delta = other.mean - self.mean
        mean = self.mean + delta * other.count / n
        m2 = (
            self.std * self.std * self.count
            + other.std * other.std * other.count
            + delta * delta * self.count * other.count / n
        )
        later = other if other.last_ts >= self.last_ts else self
        en = self.error_count + other.error_count
        error_mean = error_mae = error_rmse = error_max_abs = None
        if en:
            parts = [s for s in (self, other) if s.error_count]
            error_mean = sum(s.error_count * (s.error_mean or 0.0) for s in parts) / en
            error_mae = sum(s.error_count * (s.error_mae or 0.0) for s in parts) / en
            error_rmse = math.sqrt(
                sum(s.error_count * (s.error_rmse or 0.0) ** 2 for s in parts) / en
            )
            error_max_abs = max(s.error_max_abs or 0.0 for s in parts)
        scores = [s.score_max for s in (self, other) if s.score_max is not None]
        return Summary(
            channel=self.channel,
            start=self.start,
            interval_s=self.interval_s,
            count=n,
            min=min(self.min, other.min),
            max=max(self.max, other.max),
            mean=mean,
            std=math.sqrt(max(m2, 0.0) / n),
            last=later.last,
            last_ts=later.last_ts,
            error_count=en,
            error_mean=error_mean,
            error_mae=error_mae,
            error_rmse=error_rmse,
            error_max_abs=error_max_abs,
            score_max=max(scores) if scores else None,
        )


class SummaryAccumulator:
    """Running statistics of one channel's current interval.

    ``add`` returns the previous interval's ``Summary`` when a sample of a later interval
    arrives; ``close_open(now)`` returns the open interval's summary once ``now`` is past
    its end (pass ``math.inf`` at shutdown to close it whatever its end). Samples older
    than the open interval (late arrivals) are not summarised, only counted in ``late``.
    Callers pass finite values; a non-finite forecast or score is ignored.
    """

    __slots__ = (
        "_end",
        "_err_abs",
        "_err_max",
        "_err_n",
        "_err_sq",
        "_err_sum",
        "_last",
        "_last_ts",
        "_m2",
        "_max",
        "_mean",
        "_min",
        "_n",
        "_score_max",
        "_start",
        "channel",
        "interval_s",
        "late",
    )

    def __init__(self, channel: str, interval_s: float) -> None:
        """interval_s: interval length, seconds, > 0 (ValueError otherwise)."""
        if not interval_s > 0 or not math.isfinite(interval_s):
            raise ValueError(f"interval_s must be a positive number of seconds: {interval_s}")
        self.channel = channel
        self.interval_s = float(interval_s)
        self.late = 0
        """Samples that arrived for an interval already closed (not summarised)."""
        self._start = -_INF
        self._end = -_INF
        self._reset()

    def _reset(self) -> None:
        self._n = 0
        self._mean = 0.0
        self._m2 = 0.0
        self._min = _INF
        self._max = -_INF
        self._last = 0.0
        self._last_ts = 0.0
        self._err_n = 0
        self._err_sum = 0.0
        self._err_abs = 0.0
        self._err_sq = 0.0
        self._err_max = 0.0
        self._score_max = -_INF

    @property
    def is_open(self) -> bool:
        """True while the current interval holds samples not yet emitted."""
        return self._n > 0

    def add(
        self, ts: float, value: float, forecast: float | None, score: float | None
    ) -> Summary | None:
        """Account one sample (ts in UNIX seconds, value finite, forecast the one-step
        forecast made for this ts or None, score the anomaly score or None). Returns the
        summary of the interval this sample closed, if any."""
        closed = None
        if ts >= self._end:
            closed = self._emit() if self._n else None
            # Aligned intervals: the same bucket whatever the first sample of the day.
            self._start = math.floor(ts / self.interval_s) * self.interval_s
            self._end = self._start + self.interval_s
        elif ts < self._start:
            self.late += 1
            return None
        n = self._n + 1
        self._n = n
        delta = value - self._mean
        self._mean += delta / n
        self._m2 += delta * (value - self._mean)
        if value < self._min:
            self._min = value
        if value > self._max:
            self._max = value
        self._last = value
        self._last_ts = ts
        if forecast is not None and forecast - forecast == 0.0:  # finite
            err = value - forecast
            self._err_n += 1
            self._err_sum += err
            abs_err = -err if err < 0.0 else err
            self._err_abs += abs_err
            self._err_sq += err * err
            if abs_err > self._err_max:
                self._err_max = abs_err
        if score is not None and score > self._score_max:  # NaN compares False
            self._score_max = score
        return closed

    def close_open(self, now: float) -> Summary | None:
        """The open interval's summary if ``now`` (UNIX seconds) is at or past its end,
        else None. ``math.inf`` closes it unconditionally (shutdown). After a close, a
        later sample of the same interval starts a fresh partial summary (the store
        merges the two, ``Summary.merge``)."""
        if self._n == 0 or now < self._end:
            return None
        return self._emit()

    def _emit(self) -> Summary:
        n = self._n
        en = self._err_n
        summary = Summary(
            channel=self.channel,
            start=self._start,
            interval_s=self.interval_s,
            count=n,
            min=self._min,
            max=self._max,
            mean=self._mean,
            std=math.sqrt(max(self._m2, 0.0) / n),
            last=self._last,
            last_ts=self._last_ts,
            error_count=en,
            error_mean=self._err_sum / en if en else None,
            error_mae=self._err_abs / en if en else None,
            error_rmse=math.sqrt(self._err_sq / en) if en else None,
            error_max_abs=self._err_max if en else None,
            score_max=self._score_max if self._score_max > -_INF else None,
        )
        self._reset()
        return summary


# -- the summaries table ------------------------------------------------------------

_FIELDS = (
    "start",
    "interval_s",
    "count",
    "min",
    "max",
    "mean",
    "std",
    "last",
    "last_ts",
    "error_count",
    "error_mean",
    "error_mae",
    "error_rmse",
    "error_max_abs",
    "score_max",
)
SUMMARY_COLUMNS = ", ".join(_FIELDS)
"""The ``summaries`` columns that ``summary_from_row`` reads, in its order."""
_UPSERT = (
    f"INSERT OR REPLACE INTO summaries (channel_id, {SUMMARY_COLUMNS})"
    f" VALUES (?, {', '.join('?' * len(_FIELDS))})"
)


def summary_from_row(channel: str, row: Sequence[Any]) -> Summary:
    """The Summary of a row selected as ``SUMMARY_COLUMNS``."""
    values = dict(zip(_FIELDS, row, strict=True))
    values["count"] = int(values["count"])
    values["error_count"] = int(values["error_count"])
    return Summary(channel=channel, **values)


def rebuild_open(
    conn: sqlite3.Connection, channel_id: int, acc: SummaryAccumulator
) -> tuple[list[Summary], int]:
    """Feed ``acc`` (fresh, nothing added yet) the committed readings of ``channel_id``
    after the last one its latest stored summary covers (all of them if it has none).
    Returns the summaries of intervals those readings closed (to write at the next
    flush; the last interval stays open in ``acc``) and how many readings were fed.
    Raises sqlite3.Error."""
    row = conn.execute(
        "SELECT last_ts FROM summaries WHERE channel_id = ? ORDER BY start DESC LIMIT 1",
        (channel_id,),
    ).fetchone()
    after = -_INF if row is None else float(row[0])
    ts_parts, value_parts, forecast_parts, score_parts = [], [], [], []
    for _, block in blocks_after(conn, after):
        keep = (block.channel_id == channel_id) & (block.ts > after)
        ts_parts.append(block.ts[keep])
        value_parts.append(block.value[keep])
        forecast_parts.append(block.forecast[keep])
        score_parts.append(block.score[keep])
    closed: list[Summary] = []
    if not ts_parts:
        return closed, 0
    ts = np.concatenate(ts_parts)
    # By time, then in the order written (a stable sort), as the readings arrived.
    order = np.argsort(ts, kind="stable")
    columns = (
        ts[order].tolist(),
        np.concatenate(value_parts)[order].tolist(),
        np.concatenate(forecast_parts)[order].tolist(),
        np.concatenate(score_parts)[order].tolist(),
    )
    for t, value, forecast, score in zip(*columns, strict=True):
        summary = acc.add(
            t,
            value,
            None if forecast != forecast else forecast,  # NaN: no forecast was made
            None if score != score else score,
        )
        if summary is not None:
            closed.append(summary)
    return closed, len(order)


def upsert_summary(conn: sqlite3.Connection, channel_id: int, summary: Summary) -> Summary:
    """Write ``summary`` for ``channel_id``, merged with the stored summary of the same
    interval if there is one; returns what was stored. Raises sqlite3.Error."""
    row = conn.execute(
        f"SELECT {SUMMARY_COLUMNS} FROM summaries WHERE channel_id = ? AND start = ?",
        (channel_id, summary.start),
    ).fetchone()
    if row is not None:
        stored = summary_from_row(summary.channel, row)
        # Same interval: more samples of it after a restart. A different interval
        # (summary_interval_s changed) cannot be merged: the new one replaces it.
        if stored.interval_s == summary.interval_s:
            summary = stored.merge(summary)
    conn.execute(_UPSERT, (channel_id, *(getattr(summary, name) for name in _FIELDS)))
    return summary
