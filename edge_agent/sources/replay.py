"""Replay source: a CSV of timestamp + value columns, in real time or accelerated.

``iter_readings()`` (synchronous, as fast as the file can be parsed) and ``stream()``
(asyncio, paced by ``speed``) share one row parser, so a backtest run through the
synchronous iterator sees exactly the readings the live agent would.
"""

from __future__ import annotations

import asyncio
import csv
import logging
import math
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Annotated, Literal, TextIO

from pydantic import Field

from edge_agent.reading import Reading
from edge_agent.sources.base import FieldMapping, SourceConfigBase, SourceHealth, SourceState
from edge_agent.sources.errors import ReplayFileInvalid
from edgetwin_common.plugins import Plugin
from edgetwin_common.timestamps import parse_timestamp

__all__ = ["COUNTERS", "PLUGIN", "ReplaySource", "ReplaySourceConfig"]

log = logging.getLogger(__name__)

ROWS_OK = "rows_ok"
ROWS_MISSING_VALUE = "rows_missing_value"
"""A row with fewer cells than the header, or an empty cell in a used column: skipped."""
ROWS_NOT_NUMERIC = "rows_not_numeric"
"""Text in a used numeric column: row skipped."""
ROWS_BAD_TIMESTAMP = "rows_bad_timestamp"
"""Timestamp neither ISO 8601 nor UNIX seconds: row skipped."""
TIMESTAMPS_BACKWARDS = "timestamps_backwards"
"""Timestamp earlier than the previous row's: row skipped."""
VALUES_NOT_FINITE = "values_not_finite"
"""NaN or +-inf in a cell (or after scale/offset): that value dropped, the row used."""

ROWS_UNREADABLE = "rows_unreadable"
"""A row the csv module cannot split (e.g. a cell over its size limit): skipped."""

ROW_OUTCOMES: tuple[str, ...] = (
    ROWS_OK,
    ROWS_UNREADABLE,
    ROWS_MISSING_VALUE,
    ROWS_NOT_NUMERIC,
    ROWS_BAD_TIMESTAMP,
    TIMESTAMPS_BACKWARDS,
)
"""Counter names that add up to the number of data rows read."""
COUNTERS: tuple[str, ...] = (*ROW_OUTCOMES, VALUES_NOT_FINITE, "loops")

# In "as fast as possible" mode, give the event loop a turn every this many rows, so a
# long replay does not starve the HTTP API and the other sources.
_YIELD_EVERY_ROWS = 256


class ReplaySourceConfig(SourceConfigBase):
    """Reads ``path`` (header row; a timestamp column, ISO 8601 or UNIX seconds, and
    numeric columns). NAB's ``timestamp,value`` files work as they are."""

    type: Literal["replay"]
    path: Path
    """The CSV file (opened when the source starts, not when the config is checked)."""
    speed: Annotated[float, Field(ge=0)] = 1.0
    """1 = real time, 60 = sixty times faster, 0 = as fast as possible."""
    timestamp_column: str = "timestamp"
    """Column of ISO 8601 times (naive = UTC) or UNIX seconds."""
    columns: dict[str, FieldMapping] = Field(default_factory=dict)
    """Column -> channel; empty: every non-timestamp column feeds the channel of its name."""
    loop: bool = False
    """Start again from the top at the end (demos); timestamps keep increasing."""

    def channel_names(self) -> list[str]:
        return [m.channel for m in self.columns.values()]


class ReplaySource:
    """Readings from a CSV file, each row's values sharing the row's timestamp (the file's
    own, so a backtest sees the original times).

    Rows that cannot be used are counted (``ROW_OUTCOMES``) and skipped; the latest
    reason, with its line number, is in ``health.last_error``. State: CONNECTED while
    reading, FINISHED at the end of the file (unless ``loop``).

    Raises ``ReplayFileInvalid`` (from ``channels``, ``iter_readings`` and ``stream``)
    when the file is missing or unreadable, has no header, lacks the timestamp column
    or a configured column.
    """

    def __init__(self, config: ReplaySourceConfig) -> None:
        self.config = config
        self.name = config.name
        self.health = SourceHealth()
        self.health.counters.update(dict.fromkeys(COUNTERS, 0))

    def channels(self) -> list[str]:
        """Channel names; with no ``columns`` configured this reads the file's header."""
        if self.config.columns:
            return list(dict.fromkeys(m.channel for m in self.config.columns.values()))
        with self._open() as handle:
            header = self._header(csv.reader(handle))
        return [name for name, _, _, _ in self._plan(header)]

    def iter_readings(self) -> Iterator[Reading]:
        """Every reading of the file in order, as fast as it parses (for backtests).
        With ``loop`` configured this never ends."""
        for _, readings in self._rows():
            yield from readings

    async def stream(self) -> AsyncIterator[Reading]:
        """The file's readings paced by ``speed``: a row is yielded when
        (row ts - first ts) / speed seconds have passed since the start; speed 0 yields
        as fast as possible (still letting other tasks run)."""
        loop = asyncio.get_running_loop()
        speed = self.config.speed
        first_ts: float | None = None
        start = loop.time()
        for n, (ts, readings) in enumerate(self._rows()):
            if speed > 0:
                if first_ts is None:
                    first_ts = ts
                delay = start + (ts - first_ts) / speed - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
            elif n % _YIELD_EVERY_ROWS == 0:
                await asyncio.sleep(0)
            for reading in readings:
                yield reading

    # --- shared row parsing ---------------------------------------------------------

    def _rows(self) -> Iterator[tuple[float, list[Reading]]]:
        """(timestamp, readings) per usable row, all passes of a looping replay."""
        health = self.health
        counters = health.counters
        shift = 0.0
        while True:
            first_ts: float | None = None
            last_ts: float | None = None
            step = 0.0
            with self._open() as handle:
                reader = csv.reader(handle)
                header = self._header(reader)
                plan = self._plan(header)
                ts_index = header.index(self.config.timestamp_column)
                width = len(header)
                if health.set_state(SourceState.CONNECTED, time.time()):
                    log.info("source %s: replaying %s", self.name, self.config.path)
                while True:
                    try:
                        row = next(reader)
                    except StopIteration:
                        break
                    except csv.Error as exc:  # e.g. a field over csv's size limit
                        self._skip(ROWS_UNREADABLE, reader.line_num, str(exc))
                        continue
                    if not row or (len(row) == 1 and not row[0].strip()):
                        continue  # blank line
                    line = reader.line_num
                    if len(row) < width:
                        self._skip(ROWS_MISSING_VALUE, line, f"{len(row)} of {width} cells")
                        continue
                    ts = parse_timestamp(row[ts_index])
                    if ts is None:
                        self._skip(ROWS_BAD_TIMESTAMP, line, f"timestamp {row[ts_index]!r}")
                        continue
                    if last_ts is not None and ts < last_ts:
                        self._skip(TIMESTAMPS_BACKWARDS, line, f"{row[ts_index]!r} goes back")
                        continue
                    readings = self._values(row, plan, ts + shift, line)
                    if readings is None:
                        continue
                    if first_ts is None:
                        first_ts = ts
                    if last_ts is not None and ts > last_ts:
                        step = ts - last_ts
                    last_ts = ts
                    counters[ROWS_OK] += 1
                    if readings:
                        health.last_reading_ts = readings[-1].ts
                    yield ts + shift, readings
            if not self.config.loop or first_ts is None or last_ts is None:
                break
            # The next pass continues one sample period after this pass's last row.
            shift += last_ts - first_ts + (step or 1.0)
            counters["loops"] += 1
        if health.set_state(SourceState.FINISHED, time.time()):
            log.info("source %s: end of %s", self.name, self.config.path)

    def _values(
        self, row: list[str], plan: list[tuple[str, int, float, float]], ts: float, line: int
    ) -> list[Reading] | None:
        readings: list[Reading] = []
        for channel, index, scale, offset in plan:
            cell = row[index].strip()
            if not cell:
                self._skip(ROWS_MISSING_VALUE, line, f"empty cell in column {index + 1}")
                return None
            try:
                raw = float(cell)
            except ValueError:
                self._skip(ROWS_NOT_NUMERIC, line, f"{cell[:32]!r} is not a number")
                return None
            value = raw * scale + offset
            if math.isfinite(value):
                readings.append(Reading(ts, channel, value))
            else:
                self.health.counters[VALUES_NOT_FINITE] += 1
        return readings

    def _skip(self, reason: str, line: int, detail: str) -> None:
        self.health.counters[reason] += 1
        self.health.last_error = f"{self.config.path} line {line}: {reason}: {detail}"

    def _open(self) -> TextIO:
        path = self.config.path
        try:
            # utf-8-sig: spreadsheet exports start with a byte-order mark. errors=replace:
            # a corrupt byte makes its row not numeric (counted), not the replay fail.
            return path.open(encoding="utf-8-sig", errors="replace", newline="")
        except FileNotFoundError:
            raise ReplayFileInvalid(path, "no such file") from None
        except OSError as exc:
            raise ReplayFileInvalid(path, f"cannot read: {exc.strerror or exc}") from None

    def _header(self, reader: Iterator[list[str]]) -> list[str]:
        path = self.config.path
        try:
            header = [name.strip() for name in next(reader)]
        except StopIteration:
            raise ReplayFileInvalid(path, "empty file (a header row is needed)") from None
        except csv.Error as exc:
            raise ReplayFileInvalid(path, f"unreadable header: {exc}") from None
        if self.config.timestamp_column not in header:
            raise ReplayFileInvalid(
                path,
                f"no timestamp column {self.config.timestamp_column!r} "
                f"(header: {', '.join(header)})",
            )
        return header

    def _plan(self, header: list[str]) -> list[tuple[str, int, float, float]]:
        """(channel, column index, scale, offset) of every column to read."""
        if not self.config.columns:
            return [
                (name, i, 1.0, 0.0)
                for i, name in enumerate(header)
                if name != self.config.timestamp_column and name
            ]
        missing = [c for c in self.config.columns if c not in header]
        if missing:
            raise ReplayFileInvalid(
                self.config.path,
                f"no column {', '.join(map(repr, missing))} (header: {', '.join(header)})",
            )
        return [
            (m.channel, header.index(column), m.scale, m.offset)
            for column, m in self.config.columns.items()
        ]


PLUGIN = Plugin(ReplaySourceConfig, ReplaySource)
