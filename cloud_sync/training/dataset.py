"""Training series and windows from the stored summaries: the only training data.

Per device and channel, the summaries ordered by ``start`` become one series on a
regular grid of the device's summary interval: slot ``k`` covers
``[t0 + k * interval_s, t0 + (k + 1) * interval_s)`` and holds the count-weighted mean of
the summaries starting in it (normally exactly one). A slot no summary starts in is a
gap (NaN): windows never cross a gap.

Each channel's grid is split by time first: its most recent ``holdout_fraction`` of slots
(``WindowSpec.split_point``) is held out, and the two parts are windowed separately, so
no held-out reading is ever an input or a target of a training window.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from sqlalchemy import Engine, Row, select

from cloud_sync.db.models import Device, StoredSummary
from cloud_sync.errors import DeviceNotFound
from edgetwin_contracts.manifest import Normalization
from model_export.dataset import FORECASTABLE_Z, WindowSet, WindowSpec, windows_from_series

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class ChannelSeries:
    """One channel on the device's grid.

    Attributes:
        channel: its name.
        t0: start of slot 0, UNIX seconds.
        values: count-weighted interval means in channel units; NaN marks a gap.
        summaries: stored summaries that went into it.
    """

    channel: str
    t0: float
    values: FloatArray
    summaries: int

    @property
    def slots(self) -> int:
        return int(self.values.shape[0])

    @property
    def gaps(self) -> int:
        """Slots without data."""
        return int(np.count_nonzero(np.isnan(self.values)))


@dataclass(frozen=True, slots=True)
class DeviceSeries:
    """All of one device's channels; ``interval_s`` is the grid (sample) period."""

    device: str
    interval_s: float
    channels: tuple[ChannelSeries, ...]

    @property
    def summaries(self) -> int:
        return sum(c.summaries for c in self.channels)


@dataclass(frozen=True, slots=True)
class DeviceWindows:
    """A device's windows, split by time.

    Attributes:
        device: the device name.
        channels: the device's channel names (all of them, for the manifest).
        interval_s: sample period of the series, seconds.
        train: training windows (forecastable ones only), all channels.
        held_out: held-out windows (forecastable ones only), time order per channel.
        held_out_channel: index into ``channels`` of each held-out window.
        held_out_ts: start time of each held-out window's horizon-1 target slot.
        span: (first, last) summary start of the series used, UNIX seconds.
        summaries: summaries used.
        skipped_channels: channel -> why it was left out.
    """

    device: str
    channels: tuple[str, ...]
    interval_s: float
    train: WindowSet
    held_out: WindowSet
    held_out_channel: IntArray
    held_out_ts: FloatArray
    span: tuple[float, float]
    summaries: int
    skipped_channels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Skip:
    """A device that is not retrained, and why (a sentence)."""

    device: str
    reason: str


def device_names(engine: Engine) -> list[str]:
    """All registered devices, by name."""
    with engine.connect() as conn:
        return list(conn.scalars(select(Device.name).order_by(Device.name)))


def summary_rows(
    engine: Engine, device: str, channels: Collection[str] | None = None
) -> Sequence[Row[str, float, float, int, float]]:
    """The device's stored summaries (of ``channels``; None: all), as rows of (channel,
    start, interval_s, count, mean), by channel then start.

    Raises DeviceNotFound."""
    query = select(
        StoredSummary.channel,
        StoredSummary.start,
        StoredSummary.interval_s,
        StoredSummary.count,
        StoredSummary.mean,
    ).order_by(StoredSummary.channel, StoredSummary.start)
    with engine.connect() as conn:
        device_id = conn.scalar(select(Device.id).where(Device.name == device))
        if device_id is None:
            raise DeviceNotFound(f"no device named {device!r}")
        query = query.where(StoredSummary.device_id == device_id)
        if channels is not None:
            query = query.where(StoredSummary.channel.in_(list(channels)))
        return conn.execute(query).all()


def load_series(engine: Engine, device: str) -> DeviceSeries:
    """The device's series, one per channel, from its stored summaries.

    The grid period is the median ``interval_s`` of the device's summaries.

    Raises:
        DeviceNotFound: no device of that name.
    """
    rows = summary_rows(engine, device)
    if not rows:
        return DeviceSeries(device, 0.0, ())
    interval_s = float(np.median([r.interval_s for r in rows]))
    by_channel: dict[str, list[tuple[float, int, float]]] = {}
    for channel, start, _, count, mean in rows:
        by_channel.setdefault(channel, []).append((float(start), int(count), float(mean)))
    channels = tuple(
        _grid(name, records, interval_s) for name, records in sorted(by_channel.items())
    )
    return DeviceSeries(device, interval_s, channels)


def _grid(
    channel: str, records: list[tuple[float, int, float]], interval_s: float
) -> ChannelSeries:
    data = np.asarray(records, dtype=np.float64)
    start, count, mean = data[:, 0], data[:, 1], data[:, 2]
    t0 = float(start[0])
    slot = np.floor((start - t0) / interval_s + 1e-6).astype(np.int64)
    n = int(slot[-1]) + 1
    weight = np.bincount(slot, weights=count, minlength=n)
    total = np.bincount(slot, weights=count * mean, minlength=n)
    values = np.full(n, np.nan)
    has = weight > 0
    values[has] = total[has] / weight[has]
    return ChannelSeries(channel, t0, values, len(records))


def segments(values: FloatArray) -> list[tuple[int, FloatArray]]:
    """The runs of ``values`` without a gap, as (first index, run)."""
    ok = ~np.isnan(values)
    edges = np.flatnonzero(np.diff(np.concatenate(([0], ok.astype(np.int8), [0]))))
    return [(int(a), values[a:b]) for a, b in zip(edges[::2], edges[1::2], strict=True)]


def device_windows(
    series: DeviceSeries, spec: WindowSpec, min_summaries: int, norm: Normalization
) -> DeviceWindows | Skip:
    """Cut the device's series into training and held-out windows.

    A channel with fewer than ``min_summaries`` summaries is left out (listed in
    ``skipped_channels``). Windows whose targets are not forecastable
    (``model_export.dataset.FORECASTABLE_Z``) are left out of both parts.

    Returns Skip, with the reason, when no channel qualifies or either part holds no
    window.
    """
    if not series.channels:
        return Skip(series.device, "no summaries stored for this device")
    skipped: dict[str, str] = {}
    train: list[WindowSet] = []
    held: list[WindowSet] = []
    held_channel: list[IntArray] = []
    held_ts: list[FloatArray] = []
    first, last, used = np.inf, -np.inf, 0
    for index, ch in enumerate(series.channels):
        if ch.summaries < min_summaries:
            skipped[ch.channel] = (
                f"{ch.summaries} summaries, fewer than min_summaries {min_summaries}"
            )
            continue
        cut = spec.split_point(ch.slots)
        parts = (ch.values[:cut], ch.values[cut:])
        for _, run in segments(parts[0]):
            train.append(windows_from_series(run, spec))
        n_held = 0
        for offset, run in segments(parts[1]):
            w = windows_from_series(run, spec)
            n_held += len(w)
            held.append(w)
            target_slot = cut + offset + np.arange(len(w)) * spec.stride + spec.window_length
            held_ts.append(np.asarray(ch.t0 + target_slot * series.interval_s, dtype=np.float64))
            held_channel.append(np.full(len(w), index, dtype=np.int64))
        if n_held == 0:
            skipped[ch.channel] = "no held-out window (the recent part is too short or gappy)"
        used += ch.summaries
        first = min(first, ch.t0)
        last = max(last, ch.t0 + (ch.slots - 1) * series.interval_s)
    names = tuple(c.channel for c in series.channels)
    if used == 0:
        most = max(c.summaries for c in series.channels)
        return Skip(
            series.device,
            f"too little data: the largest channel has {most} summaries, "
            f"min_summaries is {min_summaries}",
        )
    train_set = _concat(train, spec).forecastable(norm)
    held_set = _concat(held, spec)
    channel_ix = np.concatenate(held_channel) if held_channel else np.empty(0, np.int64)
    ts = np.concatenate(held_ts) if held_ts else np.empty(0)
    if len(held_set):
        keep = forecastable_mask(held_set, norm)
        held_set = WindowSet(held_set.inputs[keep], held_set.targets[keep])
        channel_ix, ts = channel_ix[keep], ts[keep]
    if len(train_set) == 0 or len(held_set) == 0:
        return Skip(
            series.device,
            f"too little data: {len(train_set)} training and {len(held_set)} held-out windows "
            f"(each window needs {spec.span} consecutive summaries without a gap; the last "
            f"{spec.holdout_fraction:.0%} of each channel is held out)",
        )
    return DeviceWindows(
        device=series.device,
        channels=names,
        interval_s=series.interval_s,
        train=train_set,
        held_out=held_set,
        held_out_channel=channel_ix,
        held_out_ts=ts,
        span=(float(first), float(last)),
        summaries=used,
        skipped_channels=skipped,
    )


def forecastable_mask(windows: WindowSet, norm: Normalization) -> npt.NDArray[np.bool_]:
    """True for the windows whose every target lies within FORECASTABLE_Z window-stds."""
    _, z_target, _ = windows.normalized(norm)
    return np.asarray(np.all(np.abs(z_target) <= FORECASTABLE_Z, axis=1))


def _concat(parts: list[WindowSet], spec: WindowSpec) -> WindowSet:
    if not parts:
        return WindowSet(np.empty((0, spec.window_length)), np.empty((0, len(spec.horizons))))
    return WindowSet(
        np.concatenate([p.inputs for p in parts]), np.concatenate([p.targets for p in parts])
    )
