"""Writing: the in-memory buffer ``add_sample`` fills and the flush that writes it.

``add_sample`` does no SQL: it appends to five typed columns (no tuple or object per
sample) and feeds the channel's summary accumulator, under a short buffer lock that the
disk never holds. ``flush`` swaps the buffer out and writes it in one transaction
together with the closed summaries and the alarm events, each with its outbox row, so
a kill -9 at any moment leaves either all of a flush or none of it.
"""

from __future__ import annotations

import logging
import math
import sqlite3
import threading
from array import array
from collections.abc import Callable
from dataclasses import dataclass, field

from edge_agent.alarms.model import AlarmEvent
from edge_agent.store.alarm_log import record_alarm_events
from edge_agent.store.blocks import insert_blocks
from edge_agent.store.config import StoreConfig
from edge_agent.store.database import Database, transaction
from edge_agent.store.errors import StoreUnavailable
from edge_agent.store.outbox import Appended, Outbox, OutboxKind, payload_text
from edge_agent.store.retention import Retention
from edge_agent.store.summary import (
    Summary,
    SummaryAccumulator,
    rebuild_open,
    upsert_summary,
)

log = logging.getLogger(__name__)

_NAN = math.nan
_isfinite = math.isfinite


@dataclass(slots=True)
class Buffered:
    """What waits for the next flush (and is put back if that flush fails)."""

    ts: array[float]
    channel_id: array[int]
    value: array[float]
    forecast: array[float]
    score: array[float]
    summaries: list[Summary] = field(default_factory=list)
    events: list[AlarmEvent] = field(default_factory=list)
    channels: list[tuple[int, str]] = field(default_factory=list)
    """New channels (id, name), written before their readings."""

    @classmethod
    def empty(cls) -> Buffered:
        return cls(array("d"), array("q"), array("d"), array("d"), array("d"))

    def __len__(self) -> int:
        return len(self.ts) + len(self.summaries) + len(self.events) + len(self.channels)

    def prepend(self, older: Buffered) -> None:
        self.ts[:0] = older.ts
        self.channel_id[:0] = older.channel_id
        self.value[:0] = older.value
        self.forecast[:0] = older.forecast
        self.score[:0] = older.score
        self.summaries[:0] = older.summaries
        self.events[:0] = older.events
        self.channels[:0] = older.channels

    def drop_oldest_readings(self, k: int) -> None:
        for column in (self.ts, self.channel_id, self.value, self.forecast, self.score):
            del column[:k]


class Writer:
    """The buffer and the flush. ``outbox`` and ``retention`` get the rows a flush
    adds counted once it commits. clock: UNIX seconds (outbox times, the last flush).

    The sample counters are written under the buffer lock, the flush counters under
    the database lock."""

    def __init__(
        self,
        db: Database,
        config: StoreConfig,
        clock: Callable[[], float],
        outbox: Outbox,
        retention: Retention,
    ) -> None:
        self._db = db
        self._clock = clock
        self._outbox = outbox
        self._retention = retention
        self._interval_s = config.summary_interval_s
        self._flush_max_rows = config.flush_max_rows
        self._buffer_max_rows = config.buffer_max_rows
        self._lock = threading.Lock()
        self._use(Buffered.empty())
        self._channels: dict[str, tuple[int, SummaryAccumulator]] = {}
        next_id = 1
        for cid, name in db.conn.execute("SELECT id, name FROM channels"):
            self._channels[name] = (cid, SummaryAccumulator(name, self._interval_s))
            next_id = max(next_id, cid + 1)
        self._next_channel_id = next_id
        self.samples_resummarised = 0
        """Committed readings fed back into the open intervals at start (after a kill)."""
        for cid, acc in self._channels.values():
            closed, n = rebuild_open(db.conn, cid, acc)
            self._buf.summaries.extend(closed)
            self.samples_resummarised += n
        if self.samples_resummarised:
            log.info(
                "summaries: %d committed readings without a summary fed back into the"
                " open intervals (the last stop was not clean)",
                self.samples_resummarised,
            )
        self.samples_added = 0
        self.samples_rejected = 0
        self.samples_dropped = 0
        self.flushes = 0
        self.flush_failures = 0
        self.last_flush_ts: float | None = None

    def add_sample(
        self, ts: float, channel: str, value: float, forecast: float | None, score: float | None
    ) -> None:
        """What ``Store.add_sample`` does. O(1), no SQL."""
        # x - x is 0.0 for a finite x and NaN otherwise: the finiteness check without
        # two calls (this runs on every sample).
        if not (value - value == 0.0 and ts - ts == 0.0):
            with self._lock:
                self.samples_rejected += 1
            return
        with self._lock:
            entry = self._channels.get(channel)
            if entry is None:
                entry = self._add_channel(channel)
            closed = entry[1].add(ts, value, forecast, score)
            if closed is not None:
                self._buf.summaries.append(closed)
            if len(self._buf.ts) >= self._buffer_max_rows:
                # Only while flushes keep failing: drop a whole flush's worth at once so
                # the memmove is paid once per flush_max_rows samples, not per sample.
                k = min(self._flush_max_rows, len(self._buf.ts))
                self._buf.drop_oldest_readings(k)
                self.samples_dropped += k
            add_ts, add_channel_id, add_value, add_forecast, add_score = self._appends
            add_ts(ts)
            add_channel_id(entry[0])
            add_value(value)
            # NaN stands for None in a block: no per-row tuple or object.
            add_forecast(_NAN if forecast is None else forecast)
            add_score(_NAN if score is None else score)
            self.samples_added += 1

    def _use(self, buf: Buffered) -> None:
        """Make ``buf`` the buffer samples go to (call under the buffer lock). Its
        columns' appends are bound once here, not on every sample; the columns are
        only ever changed in place, so the bound methods stay valid."""
        self._buf = buf
        self._appends = (
            buf.ts.append,
            buf.channel_id.append,
            buf.value.append,
            buf.forecast.append,
            buf.score.append,
        )

    def _add_channel(self, name: str) -> tuple[int, SummaryAccumulator]:
        entry = (self._next_channel_id, SummaryAccumulator(name, self._interval_s))
        self._next_channel_id += 1
        self._channels[name] = entry
        self._buf.channels.append((entry[0], name))
        return entry

    def add_alarm_event(self, event: AlarmEvent) -> None:
        """What ``Store.add_alarm_event`` does. Raises ValueError."""
        if not (_isfinite(event.ts) and _isfinite(event.alarm.raised_at)):
            raise ValueError(f"alarm event {event.alarm.id}: non-finite time")
        with self._lock:
            self._buf.events.append(event)

    def close_open(self, at: float) -> int:
        """Buffer the summary of every open interval ended by ``at`` (UNIX seconds);
        returns how many closed."""
        n = 0
        with self._lock:
            for _, acc in self._channels.values():
                summary = acc.close_open(at)
                if summary is not None:
                    self._buf.summaries.append(summary)
                    n += 1
        return n

    @property
    def is_flush_due(self) -> bool:
        buf = self._buf
        return len(buf.ts) >= self._flush_max_rows or bool(buf.events)

    def pending(self) -> tuple[int, int, int, int]:
        """(readings, summaries, alarm events) buffered, and the samples that came too
        late to be summarised."""
        with self._lock:
            buf = self._buf
            late = sum(acc.late for _, acc in self._channels.values())
            return len(buf.ts), len(buf.summaries), len(buf.events), late

    def flush(self) -> int:
        """What ``Store.flush`` does; returns the records written. Raises
        StoreUnavailable (everything stays buffered)."""
        with self._db.lock:
            with self._lock:
                batch = self._buf
                self._use(Buffered.empty())
            if not len(batch):
                return 0
            try:
                # An alarm must survive a power cut once its action has fired: pay one
                # fsync for this (rare) commit.
                with transaction(self._db.conn, durable=bool(batch.events)):
                    appended = self._write(self._db.conn, batch)
            except BaseException as exc:
                self._put_back(batch)
                self.flush_failures += 1
                if isinstance(exc, sqlite3.Error):
                    raise StoreUnavailable(
                        f"flush failed, {len(batch)} records kept buffered: {exc}"
                    ) from exc
                raise
            self._retention.count_written(len(batch.ts))
            self._outbox.account(appended)
            self.flushes += 1
            self.last_flush_ts = self._clock()
            return len(batch.ts) + len(batch.summaries) + len(batch.events)

    def _write(self, conn: sqlite3.Connection, batch: Buffered) -> Appended:
        now = self._clock()
        if batch.channels:
            conn.executemany("INSERT INTO channels (id, name) VALUES (?, ?)", batch.channels)
        if batch.ts:
            insert_blocks(
                conn, batch.ts, batch.channel_id, batch.value, batch.forecast, batch.score
            )
        outbox: list[tuple[str, float, str]] = []
        for summary in batch.summaries:
            stored = upsert_summary(conn, self._channels[summary.channel][0], summary)
            outbox.append((OutboxKind.SUMMARY.value, now, payload_text(stored.to_dict())))
        for payload in record_alarm_events(conn, batch.events):
            outbox.append((OutboxKind.ALARM.value, now, payload))
        return self._outbox.append(conn, outbox)

    def _put_back(self, batch: Buffered) -> None:
        with self._lock:
            self._buf.prepend(batch)
            overflow = len(self._buf.ts) - self._buffer_max_rows
            if overflow > 0:
                self._buf.drop_oldest_readings(overflow)
                self.samples_dropped += overflow
