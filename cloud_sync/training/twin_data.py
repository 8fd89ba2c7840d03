"""A device's synced summaries as the twin's training and held-out data.

The summaries of the twin's channels are merged into the twin's periods (count-weighted
means, periods aligned to multiples of the period, as the device's and the cloud's
what-if state is built: docs/twin.md "The state"). A period is complete when every
channel's summaries cover it. The complete periods are split by time: the most recent
``holdout_fraction`` is held out (the what-if comparison runs there), the rest is
training data; each part is a list of runs of back-to-back periods, cut at every gap.

What is wrong with the data is said, never raised: a channel missing, summaries coarser
than the period, non-finite means (left out: their periods become gaps), too few
periods, no held-out stretch long enough for a what-if.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from sqlalchemy import Engine

from cloud_sync.training.dataset import summary_rows

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

PIECE_PERIODS = 120
"""Periods per training series (2 hours at a 1-minute period): runs are cut into pieces
of this length (the rest of a run shorter than a piece is left out of training)."""


@dataclass(frozen=True, slots=True)
class TwinData:
    """One device's data at the twin's period, split by time.

    Attributes:
        train, held_out: runs of back-to-back complete periods, each (periods, channels)
            in ``channels`` order, oldest first.
        periods: complete periods in all.
        gaps: breaks between runs (over the whole span).
        span: (start of the first, end of the last) complete period, UNIX s.
        notes: problems found in the data and what was done about them, sentences.
    """

    device: str
    channels: tuple[str, ...]
    period_s: float
    train: list[FloatArray]
    held_out: list[FloatArray]
    periods: int
    gaps: int
    span: tuple[float, float]
    notes: list[str] = field(default_factory=list)

    @property
    def held_out_periods(self) -> int:
        return sum(len(r) for r in self.held_out)

    @property
    def train_periods(self) -> int:
        return sum(len(r) for r in self.train)


@dataclass(frozen=True, slots=True)
class TwinSkip:
    """A device whose twin is not retrained, and why (a sentence)."""

    device: str
    reason: str


def twin_data(
    engine: Engine,
    device: str,
    channels: tuple[str, ...],
    period_s: float,
    *,
    holdout_fraction: float,
    min_periods: int,
    held_out_run: int,
    train_run: int,
) -> TwinData | TwinSkip:
    """The device's twin data, or why there is none usable.

    ``held_out_run``: periods a held-out run needs to hold one what-if (window +
    horizon); ``train_run``: periods a training run needs to be used.

    Raises DeviceNotFound.
    """
    rows = _rows(engine, device, channels)
    notes: list[str] = []
    merged = _period_means(device, rows, channels, period_s, notes)
    if isinstance(merged, TwinSkip):
        return merged
    common, values = merged
    if len(common) < min_periods:
        return TwinSkip(
            device,
            f"too little data: {len(common)} complete {period_s:g} s periods of "
            f"{', '.join(channels)}; min_periods is {min_periods}",
        )
    cut = common[min(len(common) - 1, math.floor(len(common) * (1 - holdout_fraction)))]
    train = [r for r in _runs(common, values, common < cut) if len(r) >= train_run]
    held = [r for r in _runs(common, values, common >= cut) if len(r) >= held_out_run]
    gaps = int(np.count_nonzero(np.diff(common) > 1))
    if gaps:
        notes.append(f"{gaps} gap(s) in the synced periods: runs are cut there")
    if not held:
        return TwinSkip(
            device,
            f"no held-out stretch: the most recent {holdout_fraction:.0%} of the "
            f"{len(common)} complete periods holds no {held_out_run} back-to-back periods "
            "(window + horizon) without a gap",
        )
    if not train:
        return TwinSkip(
            device,
            f"no training stretch of {train_run} back-to-back complete periods before the "
            "held-out part",
        )
    return TwinData(
        device=device,
        channels=channels,
        period_s=period_s,
        train=train,
        held_out=held,
        periods=len(common),
        gaps=gaps,
        span=(float(common[0] * period_s), float((common[-1] + 1) * period_s)),
        notes=notes,
    )


def _period_means(
    device: str,
    rows: dict[str, list[tuple[float, float, float, float]]],
    channels: tuple[str, ...],
    period_s: float,
    notes: list[str],
) -> tuple[IntArray, FloatArray] | TwinSkip:
    """(keys of the complete periods, (periods, channels) means), or why there are none;
    non-finite means are left out and said in ``notes``."""
    missing = [c for c in channels if c not in rows]
    if missing:
        return TwinSkip(
            device,
            f"no synced summaries of {', '.join(missing)} (the twin reads {', '.join(channels)})",
        )
    per: dict[str, tuple[IntArray, FloatArray]] = {}
    for channel in channels:
        data = np.asarray(rows[channel], dtype=np.float64)  # start, interval_s, count, mean
        interval = float(np.median(data[:, 1]))
        if interval > period_s * (1 + 1e-9):
            return TwinSkip(
                device,
                f"{channel} is summarised every {interval:g} s, coarser than the twin's "
                f"{period_s:g} s period ([store] summary_interval_s must divide it)",
            )
        bad = ~np.isfinite(data[:, 3])
        if np.any(bad):
            notes.append(
                f"{channel}: {int(bad.sum())} summaries with a non-finite mean left out "
                "(their periods count as gaps)"
            )
            data = data[~bad]
        k = np.floor(data[:, 0] / period_s + 1e-9).astype(np.int64)
        keys, inverse = np.unique(k, return_inverse=True)
        weight = np.bincount(inverse, weights=data[:, 2])
        total = np.bincount(inverse, weights=data[:, 2] * data[:, 3])
        covered = np.bincount(inverse, weights=data[:, 1])
        ok = (covered >= period_s * (1 - 1e-9)) & (weight > 0)
        per[channel] = (np.asarray(keys[ok], dtype=np.int64), total[ok] / weight[ok])
    common = per[channels[0]][0]
    for channel in channels[1:]:
        common = np.intersect1d(common, per[channel][0], assume_unique=True)
    values = np.empty((len(common), len(channels)))
    for j, channel in enumerate(channels):
        keys_j, means = per[channel]
        values[:, j] = means[np.searchsorted(keys_j, common)]
    return common, values


def training_series(runs: list[FloatArray], length: int = PIECE_PERIODS) -> FloatArray:
    """(pieces, length, channels): each run cut into back-to-back pieces of ``length``
    periods, the last one aligned to the run's end (it may overlap the one before);
    runs shorter than ``length`` are left out. Empty (0, length, channels) when none."""
    pieces = []
    for run in runs:
        if len(run) < length:
            continue
        starts = list(range(0, len(run) - length + 1, length))
        if starts[-1] != len(run) - length:
            starts.append(len(run) - length)
        pieces += [run[s : s + length] for s in starts]
    if not pieces:
        width = runs[0].shape[1] if runs else 0
        return np.empty((0, length, width))
    return np.stack(pieces)


def _rows(
    engine: Engine, device: str, channels: tuple[str, ...]
) -> dict[str, list[tuple[float, float, float, float]]]:
    result = summary_rows(engine, device, channels)
    rows: dict[str, list[tuple[float, float, float, float]]] = {}
    for channel, start, interval_s, count, mean in result:
        value = math.nan if mean is None else float(mean)
        rows.setdefault(channel, []).append((float(start), float(interval_s), float(count), value))
    return rows


def _runs(keys: IntArray, values: FloatArray, mask: npt.NDArray[np.bool_]) -> list[FloatArray]:
    """The runs of consecutive period keys among those in ``mask``."""
    k, v = keys[mask], values[mask]
    if len(k) == 0:
        return []
    breaks = np.flatnonzero(np.diff(k) > 1) + 1
    return [part for part in np.split(v, breaks) if len(part)]
