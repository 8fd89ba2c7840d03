"""Dataset CSVs and the training windows cut from them.

A dataset is a CSV file with a header ``timestamp,<channel>[,<channel>...]``: one row
per sample time, timestamps increasing (a repeat or a step back of at most an hour,
as at a daylight-saving change, is tolerated and reported), ISO 8601 (``2014-07-01 00:00:00``,
``2014-07-01T00:00:00Z``; naive times are taken as UTC) or epoch seconds; every channel
cell a finite number. The NAB files (``timestamp,value``) are datasets.

Windows: for each channel, an input window of ``window_length`` raw readings ending at
sample t, and targets at t + h for each horizon h. Each series is split by time first:
the last ``holdout_fraction`` of its samples are held out, and no window (inputs or
targets) spans the split, so no held-out reading is ever seen in training.
"""

from __future__ import annotations

import csv
import hashlib
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from edgetwin_common.timestamps import parse_timestamp
from edgetwin_contracts.manifest import Normalization
from edgetwin_contracts.normalization import normalize_windows
from model_export.errors import DatasetInvalid

FloatArray = npt.NDArray[np.float64]

TIMESTAMP_COLUMN = "timestamp"
FORECASTABLE_Z = 10.0
"""Targets farther than this many window-stds from the window mean are steps or spikes
after a (near-)flat window: no model can forecast them, and in window-std units a single
one (|z| reaches 1e3 after a stuck sensor) would dominate a mean error. Training and
the held-out measurement both leave such windows out (``WindowSet.forecastable``)."""
MAX_CLOCK_STEP_BACK_S = 3600.0
"""Real logs repeat or step back an hour at daylight-saving changes (two NAB files do):
rows are samples in file order, so such a row is kept and reported, while a larger step
back means the file is out of order and is refused."""
_MISSING_TOKENS = frozenset({"", "na", "n/a", "null", "none", "nan", "-nan"})


@dataclass(frozen=True, slots=True)
class WindowSpec:
    """How series are cut into windows.

    Attributes:
        window_length: input readings per window, >= 2.
        horizons: samples ahead of each target, strictly ascending, each >= 1.
        stride: samples between consecutive window starts, >= 1.
        holdout_fraction: share of each series (its end) held out, in (0, 1).
    """

    window_length: int = 32
    horizons: tuple[int, ...] = (1, 2, 4, 8, 16)
    stride: int = 1
    holdout_fraction: float = 0.2

    def __post_init__(self) -> None:
        if self.window_length < 2:
            raise ValueError(f"window_length must be >= 2, got {self.window_length}")
        if not self.horizons or self.horizons[0] < 1:
            raise ValueError(f"horizons must be >= 1 and not empty, got {self.horizons}")
        if any(b <= a for a, b in zip(self.horizons, self.horizons[1:], strict=False)):
            raise ValueError(f"horizons must be strictly ascending, got {self.horizons}")
        if self.stride < 1:
            raise ValueError(f"stride must be >= 1, got {self.stride}")
        if not 0.0 < self.holdout_fraction < 1.0:
            raise ValueError(f"holdout_fraction must be in (0, 1), got {self.holdout_fraction}")

    @property
    def span(self) -> int:
        """Samples one window needs: its inputs plus the farthest target."""
        return self.window_length + self.horizons[-1]

    def split_point(self, n: int) -> int:
        """Index of the first held-out sample of a series of ``n`` samples."""
        return n - math.ceil(n * self.holdout_fraction)

    def min_rows(self) -> int:
        """Fewest samples for which both parts of the split hold at least one window."""
        n = self.span
        while True:
            cut = self.split_point(n)
            if cut >= self.span and n - cut >= self.span:
                return n
            n += 1


@dataclass(frozen=True, slots=True)
class WindowSet:
    """Raw windows, in channel units: ``inputs`` (N, window_length), ``targets`` (N, H)."""

    inputs: FloatArray
    targets: FloatArray

    def __len__(self) -> int:
        return int(self.inputs.shape[0])

    def normalized(self, norm: Normalization) -> tuple[FloatArray, FloatArray, FloatArray]:
        """Return (z_inputs, z_targets, std_eff); targets use their own window's mean/std,
        exactly as the device denormalises forecasts."""
        z, mean, std = normalize_windows(self.inputs, norm)
        return z, (self.targets - mean[:, None]) / std[:, None], std

    def forecastable(self, norm: Normalization, max_abs_z: float = FORECASTABLE_Z) -> WindowSet:
        """The windows whose every target lies within ``max_abs_z`` window-stds of the
        window mean (see ``FORECASTABLE_Z``); order kept."""
        _, z_target, _ = self.normalized(norm)
        keep = np.all(np.abs(z_target) <= max_abs_z, axis=1)
        return WindowSet(self.inputs[keep], self.targets[keep])

    def subsample(self, max_windows: int, seed: int = 0) -> WindowSet:
        """At most ``max_windows`` windows, chosen evenly at random, order kept."""
        if len(self) <= max_windows:
            return self
        rng = np.random.default_rng(seed)
        keep = np.sort(rng.choice(len(self), size=max_windows, replace=False))
        return WindowSet(self.inputs[keep], self.targets[keep])


def windows_from_series(series: npt.ArrayLike, spec: WindowSpec) -> WindowSet:
    """Every window of one series (start 0, step ``spec.stride``); empty when too short."""
    x = np.asarray(series, dtype=np.float64)
    horizons = np.asarray(spec.horizons)
    n_windows = (len(x) - spec.span) // spec.stride + 1 if len(x) >= spec.span else 0
    starts = np.arange(n_windows) * spec.stride
    inputs = x[starts[:, None] + np.arange(spec.window_length)]
    last = starts + spec.window_length - 1
    targets = x[last[:, None] + horizons]
    return WindowSet(
        inputs.reshape(n_windows, spec.window_length), targets.reshape(n_windows, len(horizons))
    )


def split_windows(series: Iterable[npt.ArrayLike], spec: WindowSpec) -> tuple[WindowSet, WindowSet]:
    """Cut each series at ``spec.split_point`` and window both parts separately.

    Returns (train, held_out), windows concatenated series after series, in time order
    within a series. A part shorter than ``spec.span`` contributes no windows.
    """
    train: list[WindowSet] = []
    held: list[WindowSet] = []
    for s in series:
        x = np.asarray(s, dtype=np.float64)
        cut = spec.split_point(len(x))
        train.append(windows_from_series(x[:cut], spec))
        held.append(windows_from_series(x[cut:], spec))
    return _concat(train, spec), _concat(held, spec)


def _concat(parts: Sequence[WindowSet], spec: WindowSpec) -> WindowSet:
    if not parts:
        empty = np.empty((0, spec.window_length))
        return WindowSet(empty, np.empty((0, len(spec.horizons))))
    return WindowSet(
        np.concatenate([p.inputs for p in parts]), np.concatenate([p.targets for p in parts])
    )


@dataclass(frozen=True, slots=True)
class Dataset:
    """A validated dataset CSV.

    Attributes:
        path: where it was read from.
        channels: channel names, in column order.
        timestamps: epoch seconds (UTC), strictly increasing, shape (rows,).
        values: readings in channel units, all finite, shape (rows, channels).
        sha256: hex digest of the file's bytes.
        clock_steps: lines whose timestamp repeats or steps back by at most
            ``MAX_CLOCK_STEP_BACK_S`` (kept, in file order).
    """

    path: Path
    channels: tuple[str, ...]
    timestamps: FloatArray
    values: FloatArray
    sha256: str
    clock_steps: tuple[int, ...] = ()

    @property
    def rows(self) -> int:
        return int(self.values.shape[0])

    @property
    def sample_period_s(self) -> float:
        """Median spacing of the timestamps, in seconds."""
        return float(np.median(np.diff(self.timestamps)))

    def series(self) -> list[FloatArray]:
        """One array per channel."""
        return [self.values[:, i].copy() for i in range(len(self.channels))]


def load_dataset(path: Path, spec: WindowSpec | None = None) -> Dataset:
    """Read and validate a dataset CSV.

    Args:
        path: the CSV file.
        spec: when given, the file must hold at least ``spec.min_rows()`` rows.

    Raises:
        DatasetInvalid: the file is missing or unreadable, the header is not
            ``timestamp,<channel>...``, a row has the wrong number of fields, a cell is
            empty, not a number or not finite, a timestamp cannot be parsed or does not
            increase, or there are too few rows. The message names the file, line and
            column.
    """
    raw, text = _read_text(path)
    reader = csv.reader(text.splitlines())
    header = _read_header(path, reader)
    channels = tuple(header[1:])
    timestamps: list[float] = []
    rows: list[list[float]] = []
    last_line = 1
    clock_steps: list[int] = []
    for fields in reader:
        line = reader.line_num
        if not fields or all(not f.strip() for f in fields):
            continue  # blank lines carry no sample
        last_line = line
        if len(fields) != len(header):
            raise DatasetInvalid(
                path, f"{len(fields)} fields, the header has {len(header)}", line=line
            )
        ts = _parse_timestamp(path, line, fields[0])
        if timestamps and ts <= timestamps[-1]:
            if timestamps[-1] - ts > MAX_CLOCK_STEP_BACK_S:
                raise DatasetInvalid(
                    path,
                    f"timestamp {fields[0].strip()!r} is {timestamps[-1] - ts:g} s before the "
                    "previous row's; rows must be in increasing time order (a step back of "
                    f"up to {MAX_CLOCK_STEP_BACK_S:g} s is taken as a clock change)",
                    line=line,
                    column=TIMESTAMP_COLUMN,
                )
            clock_steps.append(line)
        timestamps.append(ts)
        rows.append(
            [
                _parse_reading(path, line, name, cell)
                for name, cell in zip(channels, fields[1:], strict=True)
            ]
        )

    if spec is not None:
        _require_rows(path, spec, len(rows), last_line)
    if not rows:
        raise DatasetInvalid(path, "holds a header but no data rows")
    values = np.asarray(rows, dtype=np.float64).reshape(len(rows), len(channels))
    return Dataset(
        path=path,
        channels=channels,
        timestamps=np.asarray(timestamps, dtype=np.float64),
        values=values,
        sha256=hashlib.sha256(raw).hexdigest(),
        clock_steps=tuple(clock_steps),
    )


def _read_text(path: Path) -> tuple[bytes, str]:
    """The file's bytes (hashed into the dataset's identity) and its UTF-8 text."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DatasetInvalid(path, "file not found") from None
    except IsADirectoryError:
        raise DatasetInvalid(path, "is a directory, not a CSV file") from None
    except OSError as exc:
        raise DatasetInvalid(path, f"cannot be read ({exc.strerror})") from None
    try:
        return raw, raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise DatasetInvalid(path, "is not UTF-8 text", line=line) from None


def _require_rows(path: Path, spec: WindowSpec, rows: int, last_line: int) -> None:
    if rows < spec.min_rows():
        raise DatasetInvalid(
            path,
            f"{rows} data rows; at least {spec.min_rows()} are needed so that both the "
            f"training part and the held-out last {spec.holdout_fraction:.0%} hold a "
            f"window of {spec.window_length} readings plus the largest horizon "
            f"{spec.horizons[-1]}",
            line=last_line if rows else None,
        )


def _read_header(path: Path, reader: Iterable[list[str]]) -> list[str]:
    for fields in reader:
        if not fields or all(not f.strip() for f in fields):
            continue
        header = [f.strip() for f in fields]
        if header[0].lower() != TIMESTAMP_COLUMN:
            raise DatasetInvalid(
                path,
                f"the first column is {header[0]!r}; the header must be "
                "'timestamp,<channel>[,<channel>...]'",
                line=1,
                column=header[0],
            )
        if len(header) < 2:
            raise DatasetInvalid(path, "the header names no channel after 'timestamp'", line=1)
        seen: set[str] = set()
        for name in header[1:]:
            if not name:
                raise DatasetInvalid(path, "a channel column has an empty name", line=1)
            if name in seen:
                raise DatasetInvalid(path, "channel name appears twice", line=1, column=name)
            seen.add(name)
        return header
    raise DatasetInvalid(path, "is empty; expected a header 'timestamp,<channel>...'")


def _parse_timestamp(path: Path, line: int, cell: str) -> float:
    text = cell.strip()
    if not text:
        raise DatasetInvalid(path, "missing timestamp (empty cell)", line=line, column="timestamp")
    ts = parse_timestamp(text)
    if ts is None:
        raise DatasetInvalid(
            path,
            f"timestamp {text!r} is not finite"
            if _is_number(text)
            else f"timestamp {text!r} is neither ISO 8601 (2014-07-01T00:00:00) nor epoch seconds",
            line=line,
            column=TIMESTAMP_COLUMN,
        )
    return ts


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _parse_reading(path: Path, line: int, column: str, cell: str) -> float:
    text = cell.strip()
    if text.lower() in _MISSING_TOKENS:
        shown = "empty cell" if not text else repr(text)
        raise DatasetInvalid(path, f"missing value ({shown})", line=line, column=column)
    try:
        # float() would accept '1_000'; sensors never write that, so it is text here.
        if "_" in text:
            raise ValueError(text)
        value = float(text)
    except ValueError:
        raise DatasetInvalid(path, f"{text!r} is not a number", line=line, column=column) from None
    if not math.isfinite(value):
        raise DatasetInvalid(path, f"{text!r} is not a finite number", line=line, column=column)
    return value
