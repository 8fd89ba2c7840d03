"""The local store: one SQLite file in WAL mode (docs/store.md).

Readings are buffered in memory by ``add_sample`` (no SQL on the per-sample path) and
written by ``flush`` in one transaction; summaries and alarm events ride in the same
transaction, each with its outbox row, so a kill -9 at any moment leaves either all of a
flush or none of it. ``enforce_limits`` keeps readings within their age and the files
within ``max_bytes``. The outbox is drained by the cloud sync worker: ``outbox_pending``
then ``outbox_ack`` once the cloud has acknowledged; nothing else deletes from it except
the cap, which drops the oldest summary rows (counted), never alarm rows.

Threading: one connection (``check_same_thread=False``) behind a lock, so the asyncio
agent (loop thread), a flush running in a worker thread (``asyncio.to_thread``) and HTTP
queries from a threadpool can share a Store. ``add_sample`` only takes a short buffer
lock, never the database lock, so a slow fsync never stalls the loop.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sqlite3
import threading
import time
from array import array
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from types import TracebackType
from typing import Any

from edge_agent.alarms.model import Alarm, AlarmEvent, AlarmEventKind, AlarmState, Severity
from edge_agent.errors import AlarmNotFound
from edge_agent.store.config import StoreConfig
from edge_agent.store.errors import StoreUnavailable, StoreUnreadable
from edge_agent.store.schema import migrate
from edge_agent.store.summary import Summary, SummaryAccumulator

_NAN = math.nan
_isfinite = math.isfinite

WAL_SIZE_LIMIT = 4 << 20
"""Bytes the WAL file is truncated to after a checkpoint (``journal_size_limit``)."""
SIZE_HIGH_WATER = 0.9
"""``enforce_limits`` trims once the files pass this fraction of ``max_bytes`` ..."""
SIZE_LOW_WATER = 0.8
"""... down to this fraction: the gap is room for what is written until the next call."""
DELETE_CHUNK_ROWS = 50_000
"""Readings deleted per transaction by the age limit (bounds the WAL a deletion needs)."""
_MAX_TRIM_STEPS = 200


class OutboxKind(StrEnum):
    ALARM = "alarm"
    SUMMARY = "summary"


ALARMS_FIRST: tuple[OutboxKind, ...] = (OutboxKind.ALARM, OutboxKind.SUMMARY)
"""The order the cloud sync drains the outbox in: alarm events before summaries."""


@dataclass(frozen=True, slots=True)
class OutboxRow:
    """One message awaiting cloud acknowledgement. ``payload`` is JSON text: an
    ``AlarmEvent.to_dict()`` (kind alarm) or a ``Summary.to_dict()`` (kind summary).
    ``id`` increases with insertion and is never reused."""

    id: int
    kind: OutboxKind
    created_at: float
    payload: str

    def data(self) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads(self.payload)
        return loaded


@dataclass(frozen=True, slots=True)
class InflightBatch:
    """The batch the sync worker is sending, persisted before the first attempt and
    resent byte for byte until the cloud acknowledges it (docs/sync.md)."""

    sequence: int
    """Per device, increasing; never reused, even after a rejection."""
    created_at: float
    """UNIX seconds, the device clock when the batch was built."""
    body: bytes
    """The gzip-compressed JSON ``Batch``, exactly as POSTed."""
    row_ids: tuple[int, ...]
    """The outbox rows it carries: deleted when it is acknowledged."""
    alarm_rows: int
    summary_rows: int
    reported_version: int | None
    """The reported-state version it carries; None: no reported state."""


QUARANTINE_MAX_ROWS = 10_000
"""Rows kept in ``sync_quarantine``; past it the oldest go (they are already counted)."""


@dataclass(frozen=True, slots=True)
class ReadingRow:
    """A stored reading; forecast and score are None where none was made."""

    ts: float
    channel: str
    value: float
    forecast: float | None
    score: float | None


@dataclass(frozen=True, slots=True)
class StoreStats:
    """A snapshot of the store's size and counters (counters since this Store opened)."""

    file_bytes: int
    """Main file + WAL, bytes."""
    reading_rows: int
    pending_rows: int
    """Readings buffered in memory, not yet flushed."""
    pending_summaries: int
    pending_alarm_events: int
    outbox_rows: dict[str, int]
    """Rows awaiting acknowledgement, by kind."""
    samples_added: int
    samples_rejected: int
    """Non-finite ts or value: not stored, not summarised."""
    samples_dropped: int
    """Oldest buffered readings dropped because flushes kept failing (buffer_max_rows)."""
    samples_late: int
    """Stored but not summarised: their interval had already closed."""
    outbox_added: dict[str, int]
    outbox_acked: int
    outbox_dropped: int
    """Summary rows dropped because the outbox was at outbox_max_rows."""
    readings_deleted_age: int
    readings_deleted_size: int
    summaries_deleted: int
    alarms_deleted: int
    flushes: int
    flush_failures: int
    last_flush_ts: float | None

    def to_dict(self) -> dict[str, float | int | str | None]:
        """Flat: the per-kind dicts become ``outbox_rows_<kind>`` / ``outbox_added_<kind>``."""
        flat: dict[str, float | int | str | None] = {}
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if isinstance(value, dict):
                flat.update({f"{name}_{kind}": n for kind, n in value.items()})
            else:
                flat[name] = value
        return flat


@dataclass(slots=True)
class _Batch:
    """What one flush takes from the buffers (put back if the flush fails)."""

    ts: array[float]
    channel_id: array[int]
    value: array[float]
    forecast: array[float]
    score: array[float]
    summaries: list[Summary] = field(default_factory=list)
    events: list[AlarmEvent] = field(default_factory=list)
    channels: list[tuple[int, str]] = field(default_factory=list)

    @classmethod
    def empty(cls) -> _Batch:
        return cls(array("d"), array("q"), array("d"), array("d"), array("d"))

    def __len__(self) -> int:
        return len(self.ts) + len(self.summaries) + len(self.events) + len(self.channels)

    def prepend(self, older: _Batch) -> None:
        self.ts[:0] = older.ts
        self.channel_id[:0] = older.channel_id
        self.value[:0] = older.value
        self.forecast[:0] = older.forecast
        self.score[:0] = older.score
        self.summaries[:0] = older.summaries
        self.events[:0] = older.events
        self.channels[:0] = older.channels


class Store:
    """The device's durable store. See the module docstring and docs/store.md.

    path: the SQLite file (parent directories are created). clock: UNIX seconds, used
    for outbox timestamps, the last-flush time and as the age reference of an empty
    store. Raises StoreUnreadable (not a database), StoreSchemaTooNew (written by a
    newer agent) or StoreUnavailable (cannot open or lock it now).
    """

    def __init__(
        self, path: Path, config: StoreConfig, clock: Callable[[], float] = time.time
    ) -> None:
        self.path = Path(path)
        self.config = config
        self._clock = clock
        self._db_lock = threading.Lock()
        self._buf_lock = threading.Lock()
        self._closed = False
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            # isolation_level=None: we issue BEGIN/COMMIT ourselves (one per flush).
            self._conn = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=5.0
            )
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"{self.path}: cannot open: {exc}") from exc
        try:
            self._configure()
            migrate(self._conn)
            self._load_state()
        except sqlite3.OperationalError as exc:
            self._conn.close()
            raise StoreUnavailable(f"{self.path}: {exc}") from exc
        except sqlite3.DatabaseError as exc:
            self._conn.close()
            raise StoreUnreadable(f"{self.path}: {exc}") from exc
        except BaseException:
            self._conn.close()
            raise

    def _configure(self) -> None:
        conn = self._conn
        # Only takes effect on a new, empty file (before the first table): deleted rows
        # then give their pages back to the file system via incremental_vacuum.
        conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise sqlite3.OperationalError(f"journal_mode WAL refused (got {mode})")
        # WAL + synchronous=NORMAL is the SD-card trade: a commit appends to the WAL with
        # no fsync; the WAL is fsynced only at checkpoints. After a kill -9 nothing
        # committed is lost (the kernel holds the pages). After a power cut the file is
        # still consistent (WAL frames are checksummed; a torn tail is ignored) but the
        # commits since the last WAL sync may be lost: at most the last seconds of
        # readings (the kernel writes dirty pages back within ~30 s, a checkpoint runs
        # every ~4 MiB of WAL). FULL would fsync every flush: one small, erase-block
        # sized rewrite per second, wearing the card for no gain in consistency. Flushes
        # that carry alarm events switch to FULL for that one commit (see flush()).
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute(f"PRAGMA journal_size_limit = {WAL_SIZE_LIMIT:d}")

    def _load_state(self) -> None:
        conn = self._conn
        self._channels: dict[str, tuple[int, SummaryAccumulator]] = {}
        interval = self.config.summary_interval_s
        next_id = 1
        for cid, name in conn.execute("SELECT id, name FROM channels"):
            self._channels[name] = (cid, SummaryAccumulator(name, interval))
            next_id = max(next_id, cid + 1)
        self._next_channel_id = next_id
        self._reading_rows = int(conn.execute("SELECT count(*) FROM readings").fetchone()[0])
        self._outbox_rows = self._count_outbox()
        self._buf = _Batch.empty()
        self._samples_added = 0
        self._samples_rejected = 0
        self._samples_dropped = 0
        self._outbox_added = {k.value: 0 for k in OutboxKind}
        self._outbox_acked = 0
        self._outbox_dropped = 0
        self._readings_deleted_age = 0
        self._readings_deleted_size = 0
        self._summaries_deleted = 0
        self._alarms_deleted = 0
        self._flushes = 0
        self._flush_failures = 0
        self._last_flush_ts: float | None = None

    def _count_outbox(self) -> dict[str, int]:
        counts = {k.value: 0 for k in OutboxKind}
        for kind, n in self._conn.execute("SELECT kind, count(*) FROM outbox GROUP BY kind"):
            counts[kind] = int(n)
        return counts

    # -- writing -------------------------------------------------------------------

    def add_sample(
        self, ts: float, channel: str, value: float, forecast: float | None, score: float | None
    ) -> None:
        """Buffer one reading (no SQL) and feed its channel's summary.

        ts: UNIX seconds. value: channel units. forecast: the one-step forecast that was
        made for this ts (None during warm-up); the summary's forecast error is
        ``value - forecast``. score: the anomaly score, or None. A non-finite ts or value
        is not stored and is counted in ``samples_rejected``. O(1).
        """
        if not (_isfinite(value) and _isfinite(ts)):
            with self._buf_lock:
                self._samples_rejected += 1
            return
        with self._buf_lock:
            entry = self._channels.get(channel)
            if entry is None:
                entry = self._add_channel(channel)
            closed = entry[1].add(ts, value, forecast, score)
            if closed is not None:
                self._buf.summaries.append(closed)
            buf = self._buf
            if len(buf.ts) >= self.config.buffer_max_rows:
                self._drop_oldest_buffered()
            buf.ts.append(ts)
            buf.channel_id.append(entry[0])
            buf.value.append(value)
            # NaN binds as NULL in SQLite: None without a per-row tuple or object.
            buf.forecast.append(_NAN if forecast is None else forecast)
            buf.score.append(_NAN if score is None else score)
            self._samples_added += 1

    def _add_channel(self, name: str) -> tuple[int, SummaryAccumulator]:
        entry = (self._next_channel_id, SummaryAccumulator(name, self.config.summary_interval_s))
        self._next_channel_id += 1
        self._channels[name] = entry
        self._buf.channels.append((entry[0], name))
        return entry

    def _drop_oldest_buffered(self) -> None:
        # Only while flushes keep failing: drop a whole flush's worth at once so the
        # memmove is paid once per flush_max_rows samples, not per sample.
        buf = self._buf
        k = min(self.config.flush_max_rows, len(buf.ts))
        for column in (buf.ts, buf.channel_id, buf.value, buf.forecast, buf.score):
            del column[:k]
        self._samples_dropped += k

    def add_alarm_event(self, event: AlarmEvent) -> None:
        """Buffer an alarm state change; call ``flush()`` right after so it is on disk
        (and fsynced) before the action fires. Never dropped. Raises ValueError for a
        non-finite event time or raise time (it could never be written)."""
        if not (_isfinite(event.ts) and _isfinite(event.alarm.raised_at)):
            raise ValueError(f"alarm event {event.alarm.id}: non-finite time")
        with self._buf_lock:
            self._buf.events.append(event)

    def close_open(self, now: float | None = None) -> int:
        """Close every channel's open summary interval that has ended by ``now`` (UNIX
        seconds; default the clock; ``math.inf`` closes them all, as at shutdown). The
        closed summaries are written at the next flush. Returns how many closed.

        Call it periodically (e.g. every summary_interval_s) so a channel that went
        quiet still reports its last interval. Replays pass their replay time."""
        at = self._clock() if now is None else now
        n = 0
        with self._buf_lock:
            for _, acc in self._channels.values():
                summary = acc.close_open(at)
                if summary is not None:
                    self._buf.summaries.append(summary)
                    n += 1
        return n

    @property
    def is_flush_due(self) -> bool:
        """True once flush_max_rows readings are buffered or an alarm event waits."""
        buf = self._buf
        return len(buf.ts) >= self.config.flush_max_rows or bool(buf.events)

    def flush(self) -> int:
        """Write everything buffered in one transaction; returns the records written
        (readings + summaries + alarm events; each summary and event also adds its
        outbox row). Nothing is half-written: on failure the transaction is rolled back,
        the records stay buffered for the next flush and StoreUnavailable is raised.
        Safe to run in a worker thread while ``add_sample`` continues."""
        with self._db_lock:
            with self._buf_lock:
                batch, self._buf = self._buf, _Batch.empty()
            if not len(batch):
                return 0
            conn = self._conn
            durable = bool(batch.events)
            try:
                if durable:
                    # An alarm must survive a power cut once its action has fired: pay
                    # one fsync for this (rare) commit.
                    conn.execute("PRAGMA synchronous = FULL")
                written, outbox_added, dropped = self._write(batch)
            except BaseException as exc:
                with contextlib.suppress(sqlite3.Error):
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                with self._buf_lock:
                    self._buf.prepend(batch)
                    overflow = len(self._buf.ts) - self.config.buffer_max_rows
                    if overflow > 0:
                        for column in self._columns():
                            del column[:overflow]
                        self._samples_dropped += overflow
                self._flush_failures += 1
                if isinstance(exc, sqlite3.Error):
                    raise StoreUnavailable(
                        f"flush failed, {len(batch)} records kept buffered: {exc}"
                    ) from exc
                raise
            finally:
                if durable:
                    with contextlib.suppress(sqlite3.Error):
                        conn.execute("PRAGMA synchronous = NORMAL")
            self._reading_rows += len(batch.ts)
            for kind, n in outbox_added.items():
                self._outbox_rows[kind] += n
                self._outbox_added[kind] += n
            self._outbox_rows[OutboxKind.SUMMARY.value] -= dropped
            self._outbox_dropped += dropped
            self._flushes += 1
            self._last_flush_ts = self._clock()
            return written

    def _columns(self) -> tuple[array[Any], ...]:
        b = self._buf
        return (b.ts, b.channel_id, b.value, b.forecast, b.score)

    def _write(self, batch: _Batch) -> tuple[int, dict[str, int], int]:
        conn = self._conn
        now = self._clock()
        conn.execute("BEGIN IMMEDIATE")
        if batch.channels:
            conn.executemany("INSERT INTO channels (id, name) VALUES (?, ?)", batch.channels)
        if batch.ts:
            conn.executemany(
                "INSERT INTO readings (ts, channel_id, value, forecast, score)"
                " VALUES (?, ?, ?, ?, ?)",
                zip(
                    batch.ts,
                    batch.channel_id,
                    batch.value,
                    batch.forecast,
                    batch.score,
                    strict=True,
                ),
            )
        outbox: list[tuple[str, float, str]] = []
        for summary in batch.summaries:
            stored = self._upsert_summary(summary)
            outbox.append((OutboxKind.SUMMARY.value, now, _dumps(stored.to_dict())))
        max_alarm_id = 0
        for event in batch.events:
            alarm = event.alarm
            conn.execute(
                "INSERT OR REPLACE INTO alarms (id, rule, channel, kind, severity, state,"
                " raised_at, value, message, acked_at, acked_by, cleared_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                _alarm_row(alarm),
            )
            payload = _dumps(event.to_dict())
            conn.execute(
                "INSERT INTO alarm_events (alarm_id, kind, ts, payload) VALUES (?, ?, ?, ?)",
                (alarm.id, str(event.kind), event.ts, payload),
            )
            outbox.append((OutboxKind.ALARM.value, now, payload))
            max_alarm_id = max(max_alarm_id, alarm.id)
        if batch.events:
            conn.execute(
                "INSERT INTO meta (key, value) VALUES ('max_alarm_id', ?)"
                " ON CONFLICT (key) DO UPDATE SET value = max(value, excluded.value)",
                (max_alarm_id,),
            )
        added = {k.value: 0 for k in OutboxKind}
        if outbox:
            conn.executemany(
                "INSERT INTO outbox (kind, created_at, payload) VALUES (?, ?, ?)", outbox
            )
            for kind, _, _ in outbox:
                added[kind] += 1
        dropped = self._cap_outbox(added)
        if dropped:
            # Persisted too: the twin reports the total since the store was created.
            conn.execute(
                "INSERT INTO meta (key, value) VALUES ('outbox_dropped', ?)"
                " ON CONFLICT (key) DO UPDATE SET value = value + excluded.value",
                (dropped,),
            )
        conn.execute("COMMIT")
        return len(batch.ts) + len(batch.summaries) + len(batch.events), added, dropped

    def _upsert_summary(self, summary: Summary) -> Summary:
        cid = self._channels[summary.channel][0]
        row = self._conn.execute(
            f"SELECT {_SUMMARY_COLUMNS} FROM summaries WHERE channel_id = ? AND start = ?",
            (cid, summary.start),
        ).fetchone()
        if row is not None:
            stored = _summary_from_row(summary.channel, row)
            # Same interval: more samples of it after a restart. A different interval
            # (summary_interval_s changed) cannot be merged: the new one replaces it.
            if stored.interval_s == summary.interval_s:
                summary = stored.merge(summary)
        self._conn.execute(
            f"INSERT OR REPLACE INTO summaries (channel_id, {_SUMMARY_COLUMNS})"
            f" VALUES (?, {', '.join('?' * _SUMMARY_NCOLS)})",
            (cid, *_summary_values(summary)),
        )
        return summary

    def _cap_outbox(self, added: dict[str, int]) -> int:
        total = sum(self._outbox_rows.values()) + sum(added.values())
        excess = total - self.config.outbox_max_rows
        if excess <= 0:
            return 0
        summaries = self._outbox_rows[OutboxKind.SUMMARY.value] + added[OutboxKind.SUMMARY]
        # Past the cap the oldest summaries go; alarm rows are kept even over the cap.
        k = min(excess, summaries)
        if k <= 0:
            return 0
        cur = self._conn.execute(
            "DELETE FROM outbox WHERE id IN"
            " (SELECT id FROM outbox WHERE kind = ? ORDER BY id LIMIT ?)",
            (OutboxKind.SUMMARY.value, k),
        )
        return int(cur.rowcount)

    # -- limits --------------------------------------------------------------------

    def enforce_limits(self) -> dict[str, int]:
        """Apply the age limits, then the size cap; returns what was deleted:
        ``readings_age``, ``readings_size``, ``summaries_age``, ``summaries_size``,
        ``alarms_age``.

        Age is measured back from the newest data in the store (the newest reading or
        summary end; the clock only when the store is empty), not from the clock: a
        board without an RTC boots in 1970 until NTP answers, and a replay of last
        year's data must keep its own week; neither should wipe or freeze the store.
        Size: once main + WAL pass 90 % of max_bytes, the oldest readings are deleted in
        chunks (each followed by incremental_vacuum and a TRUNCATE checkpoint, so the WAL
        never balloons) until under 80 %; if readings run out, the oldest summaries go.
        Alarms and the outbox are never deleted for size. Raises StoreUnavailable on a
        database error (the deletions already committed stay done).
        """
        with self._db_lock:
            try:
                return self._enforce()
            except sqlite3.Error as exc:
                with contextlib.suppress(sqlite3.Error):
                    if self._conn.in_transaction:
                        self._conn.execute("ROLLBACK")
                raise StoreUnavailable(f"enforce_limits failed: {exc}") from exc

    def _enforce(self) -> dict[str, int]:
        conn = self._conn
        cfg = self.config
        counts = dict.fromkeys(
            ("readings_age", "readings_size", "summaries_age", "summaries_size", "alarms_age"),
            0,
        )
        ref = self._reference_time()
        cutoff = ref - cfg.readings_max_age_s
        for (cid,) in conn.execute("SELECT id FROM channels").fetchall():
            # In chunks, each its own transaction followed by a checkpoint: after a long
            # outage the backlog can be millions of rows, and one huge DELETE would first
            # copy them all into the WAL (past the size cap).
            while True:
                cur = conn.execute(
                    "DELETE FROM readings WHERE rowid IN (SELECT rowid FROM readings"
                    " WHERE channel_id = ? AND ts < ? LIMIT ?)",
                    (cid, cutoff, DELETE_CHUNK_ROWS),
                )
                n = cur.rowcount
                self._account({"readings_age": n})
                counts["readings_age"] += n
                if n < DELETE_CHUNK_ROWS:
                    break
                self._reclaim()
        conn.execute("BEGIN IMMEDIATE")
        cur = conn.execute(
            "DELETE FROM summaries WHERE start < ?", (ref - cfg.summaries_max_age_s,)
        )
        history = {"summaries_age": cur.rowcount}
        cur = conn.execute(
            "DELETE FROM alarms WHERE state = ? AND cleared_at < ?",
            (AlarmState.CLEARED.value, ref - cfg.alarms_max_age_s),
        )
        history["alarms_age"] = cur.rowcount
        if history["alarms_age"]:
            conn.execute("DELETE FROM alarm_events WHERE alarm_id NOT IN (SELECT id FROM alarms)")
        conn.execute("COMMIT")
        self._account(history)
        counts.update(history)
        if any(counts.values()):
            self._reclaim()

        high = int(cfg.max_bytes * SIZE_HIGH_WATER)
        low = int(cfg.max_bytes * SIZE_LOW_WATER)
        if self._file_bytes() <= high:
            return counts
        for _ in range(_MAX_TRIM_STEPS):
            size = self._file_bytes()
            if size <= low:
                break
            step = dict.fromkeys(counts, 0)
            rows = self._reading_rows
            if rows > 0:
                # Rows to delete, from the average on-disk cost of a row; at most a tenth
                # of them per step so the WAL (which holds the deletions until the
                # checkpoint) stays small.
                per_row = max(size / rows, 1.0)
                k = min(rows, max(1000, rows // 10), math.ceil((size - low) / per_row) + 1)
                cur = conn.execute(
                    "DELETE FROM readings WHERE rowid IN"
                    " (SELECT rowid FROM readings ORDER BY rowid LIMIT ?)",
                    (k,),
                )
                step["readings_size"] = cur.rowcount
            else:
                n = int(conn.execute("SELECT count(*) FROM summaries").fetchone()[0])
                if n == 0:
                    break  # only alarms and the outbox remain: never deleted for size
                cur = conn.execute(
                    "DELETE FROM summaries WHERE (channel_id, start) IN"
                    " (SELECT channel_id, start FROM summaries ORDER BY start LIMIT ?)",
                    (max(100, n // 10),),
                )
                step["summaries_size"] = cur.rowcount
            self._account(step)
            for key, n in step.items():
                counts[key] += n
            self._reclaim()
        return counts

    def _account(self, counts: dict[str, int]) -> None:
        """Update the counters after a committed deletion."""
        age, size = counts.get("readings_age", 0), counts.get("readings_size", 0)
        self._reading_rows -= age + size
        self._readings_deleted_age += age
        self._readings_deleted_size += size
        self._summaries_deleted += counts.get("summaries_age", 0)
        self._summaries_deleted += counts.get("summaries_size", 0)
        self._alarms_deleted += counts.get("alarms_age", 0)

    def _reclaim(self) -> None:
        # incremental_vacuum frees one page per step and the sqlite3 module's execute()
        # steps once (fetchall() does not help: it yields no rows); executescript()
        # steps it to the end. Then the checkpoint copies the shrunk pages home and
        # truncates both files.
        self._conn.executescript("PRAGMA incremental_vacuum;")
        self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()

    def _reference_time(self) -> float:
        newest: float | None = None
        conn = self._conn
        for (cid,) in conn.execute("SELECT id FROM channels").fetchall():
            (ts,) = conn.execute(
                "SELECT max(ts) FROM readings WHERE channel_id = ?", (cid,)
            ).fetchone()
            if ts is not None and (newest is None or ts > newest):
                newest = float(ts)
        (end,) = conn.execute("SELECT max(start + interval_s) FROM summaries").fetchone()
        if end is not None and (newest is None or end > newest):
            newest = float(end)
        return self._clock() if newest is None else newest

    def _file_bytes(self) -> int:
        total = 0
        for suffix in ("", "-wal"):
            with contextlib.suppress(FileNotFoundError):
                total += os.stat(f"{self.path}{suffix}").st_size
        return total

    # -- outbox --------------------------------------------------------------------

    def outbox_pending(
        self, limit: int = 500, kinds: Sequence[OutboxKind] = ALARMS_FIRST
    ) -> list[OutboxRow]:
        """Up to ``limit`` (>= 1) unacknowledged rows: all pending rows of ``kinds[0]``
        (oldest first), then of ``kinds[1]``, ... Reading does not remove anything: rows
        stay until ``outbox_ack``. Raises StoreUnavailable."""
        _check_limit(limit)
        rows: list[OutboxRow] = []
        with self._locked() as conn:
            for kind in kinds:
                if len(rows) >= limit:
                    break
                cur = conn.execute(
                    "SELECT id, kind, created_at, payload FROM outbox"
                    " WHERE kind = ? ORDER BY id LIMIT ?",
                    (OutboxKind(kind).value, limit - len(rows)),
                )
                rows.extend(OutboxRow(i, OutboxKind(k), t, p) for i, k, t, p in cur)
        return rows

    def outbox_ack(self, ids: Iterable[int]) -> int:
        """Delete the rows the cloud acknowledged; returns how many were deleted. Ids
        not in the outbox (acked twice, or dropped by the cap) are ignored. Raises
        StoreUnavailable (nothing deleted)."""
        keys = [(int(i),) for i in ids]
        if not keys:
            return 0
        with self._locked() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                cur = conn.executemany("DELETE FROM outbox WHERE id = ?", keys)
                deleted = int(cur.rowcount)
                conn.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                raise
            self._outbox_acked += deleted
            self._outbox_rows = self._count_outbox()
        return deleted

    def outbox_dropped_total(self) -> int:
        """Summary rows dropped by the outbox cap since the store file was created
        (``stats().outbox_dropped`` counts since this Store opened)."""
        return self.meta_int("outbox_dropped")

    # -- cloud sync (docs/sync.md) -------------------------------------------------

    def meta_int(self, key: str, default: int = 0) -> int:
        """An integer from the meta table (``default`` when absent). Raises StoreUnavailable."""
        with self._locked() as conn:
            row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return default if row is None else int(row[0])

    def set_meta_int(self, key: str, value: int) -> None:
        with self._locked() as conn:
            conn.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, int(value)),
            )

    def meta_text(self, key: str) -> str | None:
        """A text value from the meta_text table (None when absent). Raises StoreUnavailable."""
        with self._locked() as conn:
            row = conn.execute("SELECT value FROM meta_text WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta_text(self, key: str, value: str) -> None:
        with self._locked() as conn:
            _set_text(conn, key, value)

    def sync_inflight(self) -> InflightBatch | None:
        """The batch staged and not yet acknowledged, if any. Raises StoreUnavailable."""
        with self._locked() as conn:
            row = conn.execute(
                "SELECT sequence, created_at, body, row_ids, alarm_rows, summary_rows,"
                " reported_version FROM sync_inflight ORDER BY sequence LIMIT 1"
            ).fetchone()
        if row is None:
            return None
        seq, created, body, ids, alarms, summaries, reported = row
        return InflightBatch(
            sequence=int(seq),
            created_at=float(created),
            body=bytes(body),
            row_ids=tuple(int(i) for i in json.loads(ids)),
            alarm_rows=int(alarms),
            summary_rows=int(summaries),
            reported_version=None if reported is None else int(reported),
        )

    def sync_stage(self, batch: InflightBatch, reported_hash: str | None = None) -> None:
        """Persist ``batch`` as the one in flight, before it is first sent, together with
        its sequence as the last one allocated (``meta.sync_sequence``) and, if it carries
        a reported state, that state's version and hash. One transaction, committed with
        ``synchronous=FULL``: after even a power cut the device never reuses a sequence
        the cloud may have stored. Raises ValueError if a batch is already in flight,
        StoreUnavailable on a database error (nothing staged)."""
        with self._locked() as conn:
            conn.execute("PRAGMA synchronous = FULL")
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    if conn.execute("SELECT 1 FROM sync_inflight").fetchone() is not None:
                        raise ValueError("a batch is already in flight")
                    conn.execute(
                        "INSERT INTO sync_inflight (sequence, created_at, body, row_ids,"
                        " alarm_rows, summary_rows, reported_version)"
                        " VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (
                            batch.sequence,
                            batch.created_at,
                            batch.body,
                            json.dumps(list(batch.row_ids), separators=(",", ":")),
                            batch.alarm_rows,
                            batch.summary_rows,
                            batch.reported_version,
                        ),
                    )
                    _set_max(conn, "sync_sequence", batch.sequence)
                    if batch.reported_version is not None:
                        _set_max(conn, "sync_reported_version", batch.reported_version)
                        if reported_hash is not None:
                            _set_text(conn, "sync_reported_hash", reported_hash)
                    conn.execute("COMMIT")
                except BaseException:
                    with contextlib.suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                    raise
            finally:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("PRAGMA synchronous = NORMAL")

    def sync_commit(self, sequence: int) -> int:
        """The cloud acknowledged batch ``sequence``: in one transaction delete its outbox
        rows, forget it as in flight and record it as ``meta.sync_acked_sequence``.
        Returns the outbox rows deleted (rows the cap dropped meanwhile are not counted).
        A sequence that is not in flight (committed already) changes nothing and returns
        0. Raises StoreUnavailable (nothing changed: the batch is resent, and the cloud
        answers it as a duplicate)."""
        with self._locked() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                row = conn.execute(
                    "SELECT row_ids FROM sync_inflight WHERE sequence = ?", (sequence,)
                ).fetchone()
                if row is None:
                    conn.execute("COMMIT")
                    return 0
                keys = [(int(i),) for i in json.loads(row[0])]
                cur = conn.executemany("DELETE FROM outbox WHERE id = ?", keys)
                deleted = max(int(cur.rowcount), 0) if keys else 0
                conn.execute("DELETE FROM sync_inflight WHERE sequence = ?", (sequence,))
                _set_max(conn, "sync_acked_sequence", sequence)
                conn.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                raise
            self._outbox_acked += deleted
            self._outbox_rows = self._count_outbox()
        return deleted

    def sync_discard(self, sequence: int) -> None:
        """Forget batch ``sequence`` as in flight without touching its outbox rows: the
        cloud refused it and never stored it (they go again in other batches). The
        sequence stays allocated and is never reused. Raises StoreUnavailable."""
        with self._locked() as conn:
            conn.execute("DELETE FROM sync_inflight WHERE sequence = ?", (sequence,))

    def sync_quarantine(self, ids: Iterable[int], reason: str) -> int:
        """Move outbox rows the cloud (or the device's own validation) refused into
        ``sync_quarantine`` with ``reason``, in one transaction; counted in
        ``meta.sync_quarantined``. Returns how many moved (ids no longer in the outbox
        are ignored). Alarm rows too: a row that can never be accepted would otherwise
        block everything queued behind it. Raises StoreUnavailable."""
        keys = [int(i) for i in ids]
        if not keys:
            return 0
        now = self._clock()
        with self._locked() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                moved = 0
                for key in keys:
                    cur = conn.execute(
                        "INSERT OR REPLACE INTO sync_quarantine"
                        " (id, kind, created_at, payload, reason, quarantined_at)"
                        " SELECT id, kind, created_at, payload, ?, ? FROM outbox WHERE id = ?",
                        (reason, now, key),
                    )
                    if cur.rowcount > 0:
                        conn.execute("DELETE FROM outbox WHERE id = ?", (key,))
                        moved += 1
                if moved:
                    conn.execute(
                        "INSERT INTO meta (key, value) VALUES ('sync_quarantined', ?)"
                        " ON CONFLICT (key) DO UPDATE SET value = value + excluded.value",
                        (moved,),
                    )
                    conn.execute(
                        "DELETE FROM sync_quarantine WHERE id IN (SELECT id FROM"
                        " sync_quarantine ORDER BY id DESC LIMIT -1 OFFSET ?)",
                        (QUARANTINE_MAX_ROWS,),
                    )
                conn.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                raise
            self._outbox_rows = self._count_outbox()
        return moved

    def sync_quarantined(self, limit: int = 100) -> list[tuple[OutboxRow, str]]:
        """The newest ``limit`` quarantined rows with the reason each was refused,
        oldest first."""
        _check_limit(limit)
        with self._locked() as conn:
            cur = conn.execute(
                "SELECT id, kind, created_at, payload, reason FROM sync_quarantine"
                " ORDER BY id DESC LIMIT ?",
                (limit,),
            )
            found = [(OutboxRow(i, OutboxKind(k), t, p), r) for i, k, t, p, r in cur]
        found.reverse()
        return found

    # -- queries -------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[sqlite3.Connection]:
        with self._db_lock:
            try:
                yield self._conn
            except sqlite3.Error as exc:
                raise StoreUnavailable(f"{self.path}: {exc}") from exc

    def readings(
        self, channel: str, since: float | None = None, limit: int = 1000
    ) -> list[ReadingRow]:
        """The newest ``limit`` (>= 1) flushed readings of ``channel`` with ts >= since
        (UNIX seconds; None: no bound), oldest first. Unknown channel: []."""
        _check_limit(limit)
        with self._locked() as conn:
            cur = conn.execute(
                "SELECT ts, value, forecast, score FROM readings"
                " WHERE channel_id = (SELECT id FROM channels WHERE name = ?) AND ts >= ?"
                " ORDER BY ts DESC LIMIT ?",
                (channel, -math.inf if since is None else since, limit),
            )
            rows = [ReadingRow(ts, channel, v, f, s) for ts, v, f, s in cur]
        rows.reverse()
        return rows

    def summaries(
        self, channel: str | None = None, since: float | None = None, limit: int = 1000
    ) -> list[Summary]:
        """The newest ``limit`` (>= 1) written summaries with start >= since, of one
        channel or all (None), oldest first (by start, then channel)."""
        _check_limit(limit)
        lower = -math.inf if since is None else since
        with self._locked() as conn:
            if channel is None:
                cur = conn.execute(
                    f"SELECT c.name, {_SUMMARY_COLUMNS} FROM summaries"
                    " JOIN channels c ON c.id = channel_id WHERE start >= ?"
                    " ORDER BY start DESC, c.name DESC LIMIT ?",
                    (lower, limit),
                )
            else:
                cur = conn.execute(
                    f"SELECT c.name, {_SUMMARY_COLUMNS} FROM summaries"
                    " JOIN channels c ON c.id = channel_id WHERE c.name = ? AND start >= ?"
                    " ORDER BY start DESC LIMIT ?",
                    (channel, lower, limit),
                )
            found = [_summary_from_row(row[0], row[1:]) for row in cur]
        found.reverse()
        return found

    def alarms(self, active_only: bool = False, limit: int = 100) -> list[Alarm]:
        """The newest ``limit`` (>= 1) alarms (current state), newest first; only those
        not cleared if ``active_only``."""
        _check_limit(limit)
        where, params = (
            ("WHERE state != ?", (AlarmState.CLEARED.value,)) if active_only else ("", ())
        )
        with self._locked() as conn:
            cur = conn.execute(
                f"SELECT {_ALARM_COLUMNS} FROM alarms {where} ORDER BY id DESC LIMIT ?",
                (*params, limit),
            )
            return [_alarm_from_row(row) for row in cur]

    def alarm(self, alarm_id: int) -> Alarm:
        """One alarm's current state. Raises AlarmNotFound."""
        with self._locked() as conn:
            row = conn.execute(
                f"SELECT {_ALARM_COLUMNS} FROM alarms WHERE id = ?", (alarm_id,)
            ).fetchone()
        if row is None:
            raise AlarmNotFound(alarm_id)
        return _alarm_from_row(row)

    def open_alarms(self) -> list[Alarm]:
        """Every active alarm (raised and not cleared, acknowledged or not), oldest first:
        what the alarm engine restores after a restart."""
        with self._locked() as conn:
            cur = conn.execute(
                f"SELECT {_ALARM_COLUMNS} FROM alarms WHERE state != ? ORDER BY id",
                (AlarmState.CLEARED.value,),
            )
            return [_alarm_from_row(row) for row in cur]

    def alarm_events(self, alarm_id: int | None = None, limit: int = 100) -> list[AlarmEvent]:
        """The newest ``limit`` (>= 1) alarm events (of one alarm, or all), oldest first,
        each with the alarm's snapshot after the change."""
        _check_limit(limit)
        with self._locked() as conn:
            if alarm_id is None:
                cur = conn.execute(
                    "SELECT payload FROM alarm_events ORDER BY id DESC LIMIT ?", (limit,)
                )
            else:
                cur = conn.execute(
                    "SELECT payload FROM alarm_events WHERE alarm_id = ? ORDER BY id DESC LIMIT ?",
                    (alarm_id, limit),
                )
            events = [_event_from_dict(json.loads(p)) for (p,) in cur]
        events.reverse()
        return events

    def max_alarm_id(self) -> int:
        """The highest alarm id ever written (0 if none), even if that alarm has since
        been deleted by age: the alarm engine continues numbering from here."""
        with self._locked() as conn:
            row = conn.execute("SELECT value FROM meta WHERE key = 'max_alarm_id'").fetchone()
        return 0 if row is None else int(row[0])

    def stats(self) -> StoreStats:
        with self._buf_lock:
            buf = self._buf
            pending = (len(buf.ts), len(buf.summaries), len(buf.events))
            late = sum(acc.late for _, acc in self._channels.values())
        with self._db_lock:
            return StoreStats(
                file_bytes=self._file_bytes(),
                reading_rows=self._reading_rows,
                pending_rows=pending[0],
                pending_summaries=pending[1],
                pending_alarm_events=pending[2],
                outbox_rows=dict(self._outbox_rows),
                samples_added=self._samples_added,
                samples_rejected=self._samples_rejected,
                samples_dropped=self._samples_dropped,
                samples_late=late,
                outbox_added=dict(self._outbox_added),
                outbox_acked=self._outbox_acked,
                outbox_dropped=self._outbox_dropped,
                readings_deleted_age=self._readings_deleted_age,
                readings_deleted_size=self._readings_deleted_size,
                summaries_deleted=self._summaries_deleted,
                alarms_deleted=self._alarms_deleted,
                flushes=self._flushes,
                flush_failures=self._flush_failures,
                last_flush_ts=self._last_flush_ts,
            )

    # -- lifecycle -----------------------------------------------------------------

    def close(self) -> None:
        """Close every open summary interval, flush, and close the file. Idempotent.
        The connection is closed even if the final flush fails (its error propagates)."""
        if self._closed:
            return
        try:
            self.close_open(math.inf)
            self.flush()
        finally:
            with self._db_lock:
                self._conn.close()
                self._closed = True

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


# -- row mapping -----------------------------------------------------------------------

_SUMMARY_FIELDS = (
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
_SUMMARY_COLUMNS = ", ".join(_SUMMARY_FIELDS)
_SUMMARY_NCOLS = len(_SUMMARY_FIELDS)

_ALARM_COLUMNS = (
    "id, rule, channel, kind, severity, state, raised_at, value, message,"
    " acked_at, acked_by, cleared_at"
)


def _summary_values(s: Summary) -> tuple[Any, ...]:
    return tuple(getattr(s, name) for name in _SUMMARY_FIELDS)


def _summary_from_row(channel: str, row: Sequence[Any]) -> Summary:
    values = dict(zip(_SUMMARY_FIELDS, row, strict=True))
    values["count"] = int(values["count"])
    values["error_count"] = int(values["error_count"])
    return Summary(channel=channel, **values)


def _alarm_row(a: Alarm) -> tuple[Any, ...]:
    return (
        a.id,
        a.rule,
        a.channel,
        a.kind,
        str(a.severity),
        str(a.state),
        a.raised_at,
        a.value,
        a.message,
        a.acked_at,
        a.acked_by,
        a.cleared_at,
    )


def _alarm_from_row(row: Sequence[Any]) -> Alarm:
    (aid, rule, channel, kind, severity, state, raised_at, value, message) = row[:9]
    acked_at, acked_by, cleared_at = row[9:]
    return Alarm(
        id=int(aid),
        rule=rule,
        channel=channel,
        kind=kind,
        severity=Severity(severity),
        state=AlarmState(state),
        raised_at=raised_at,
        value=value,
        message=message,
        acked_at=acked_at,
        acked_by=acked_by,
        cleared_at=cleared_at,
    )


def _event_from_dict(data: dict[str, Any]) -> AlarmEvent:
    a = dict(data["alarm"])
    a["severity"] = Severity(a["severity"])
    a["state"] = AlarmState(a["state"])
    return AlarmEvent(kind=AlarmEventKind(data["kind"]), ts=data["ts"], alarm=Alarm(**a))


def _set_max(conn: sqlite3.Connection, key: str, value: int) -> None:
    conn.execute(
        "INSERT INTO meta (key, value) VALUES (?, ?)"
        " ON CONFLICT (key) DO UPDATE SET value = max(value, excluded.value)",
        (key, int(value)),
    )


def _set_text(conn: sqlite3.Connection, key: str, value: str) -> None:
    conn.execute(
        "INSERT INTO meta_text (key, value) VALUES (?, ?)"
        " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (key, value),
    )


def _dumps(data: dict[str, Any]) -> str:
    return json.dumps(data, separators=(",", ":"))


def _check_limit(limit: int) -> None:
    if limit < 1:
        raise ValueError(f"limit must be >= 1: {limit}")
