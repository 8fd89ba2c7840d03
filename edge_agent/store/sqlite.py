"""The local store: one SQLite file in WAL mode (docs/store.md).

``Store`` is the façade the agent, the sync worker, the HTTP API, the OTA manager and
the backtest use; the work is done by its rooms, one module each (docs/store.md, "Where
things live"): ``writer`` (buffer and flush), ``retention`` (age and size limits),
``outbox`` and ``sync_staging`` (what awaits the cloud), ``queries``, ``summary`` (interval
summaries), ``alarm_log``, ``meta``; all share one ``database.Database`` (connection,
lock, transactions).

Readings are buffered in memory by ``add_sample`` (no SQL on the per-sample path) and
written by ``flush`` in one transaction; summaries and alarm events ride in the same
transaction, each with its outbox row, so a kill -9 at any moment leaves either all of a
flush or none of it. ``enforce_limits`` keeps readings within their age and the files
within ``max_bytes``. The outbox is drained by the cloud sync worker: ``outbox_pending``
then ``outbox_ack`` once the cloud has acknowledged; nothing else deletes from it except
the cap, which drops the oldest summary rows (counted), never alarm rows.

Threading: one connection behind a lock, so the asyncio agent (loop thread), a flush
running in a worker thread and HTTP queries from a threadpool can share a Store.
``add_sample`` only takes a short buffer lock, never the database lock, so a slow fsync
never stalls the loop.
"""

from __future__ import annotations

import math
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Protocol

from edge_agent.alarms.model import Alarm, AlarmEvent
from edge_agent.store import meta
from edge_agent.store.config import StoreConfig
from edge_agent.store.database import Database
from edge_agent.store.errors import StoreUnavailable, StoreUnreadable
from edge_agent.store.meta import Meta
from edge_agent.store.outbox import ALARMS_FIRST, Outbox, OutboxKind, OutboxRow
from edge_agent.store.queries import Queries, ReadingRow
from edge_agent.store.retention import Retention
from edge_agent.store.schema import migrate
from edge_agent.store.stats import StoreStats
from edge_agent.store.summary import Summary
from edge_agent.store.sync_staging import InflightBatch, SyncStaging
from edge_agent.store.writer import Writer


class AddSample(Protocol):
    """The signature of ``Store.add_sample``."""

    def __call__(
        self, ts: float, channel: str, value: float, forecast: float | None, score: float | None
    ) -> None: ...


class Store:
    """The device's durable store. See the module docstring and docs/store.md.

    path: the SQLite file (parent directories are created). clock: UNIX seconds, used
    for outbox timestamps, the last-flush time and as the age reference of an empty
    store. Raises StoreUnreadable (not a database), StoreSchemaTooNew (written by a
    newer agent) or StoreUnavailable (cannot open or lock it now).
    """

    add_sample: AddSample
    """Buffer one reading (no SQL) and feed its channel's summary.

    ts: UNIX seconds. value: channel units. forecast: the one-step forecast that was made
    for this ts (None during warm-up); the summary's forecast error is ``value -
    forecast``. score: the anomaly score, or None. A non-finite ts or value is not stored
    and is counted in ``samples_rejected``. O(1).
    """

    def __init__(
        self, path: Path, config: StoreConfig, clock: Callable[[], float] = time.time
    ) -> None:
        self.path = Path(path)
        self.config = config
        self._clock = clock
        self._closed = False
        self._db = Database(self.path)
        try:
            self._db.configure()
            migrate(self._db.conn)
            self._meta = Meta(self._db)
            self._outbox = Outbox(self._db, config)
            self._sync = SyncStaging(self._db, self._outbox, clock)
            self._retention = Retention(self._db, config, clock)
            self._writer = Writer(self._db, config, clock, self._outbox, self._retention)
            self._queries = Queries(self._db)
            # The per-sample path: the writer's own bound method, so the façade costs no
            # extra call per sample.
            self.add_sample = self._writer.add_sample
        except sqlite3.OperationalError as exc:
            self._db.close()
            raise StoreUnavailable(f"{self.path}: {exc}") from exc
        except sqlite3.DatabaseError as exc:
            self._db.close()
            raise StoreUnreadable(f"{self.path}: {exc}") from exc
        except BaseException:
            self._db.close()
            raise

    # -- writing (writer.py) -------------------------------------------------------

    def add_alarm_event(self, event: AlarmEvent) -> None:
        """Buffer an alarm state change; call ``flush()`` right after so it is on disk
        (and fsynced) before the action fires. Never dropped. Raises ValueError for a
        non-finite event time or raise time (it could never be written)."""
        self._writer.add_alarm_event(event)

    def close_open(self, now: float | None = None) -> int:
        """Close every channel's open summary interval that has ended by ``now`` (UNIX
        seconds; default the clock; ``math.inf`` closes them all, as at shutdown). The
        closed summaries are written at the next flush. Returns how many closed.

        Call it periodically (e.g. every summary_interval_s) so a channel that went
        quiet still reports its last interval. Replays pass their replay time."""
        return self._writer.close_open(self._clock() if now is None else now)

    @property
    def is_flush_due(self) -> bool:
        """True once flush_max_rows readings are buffered or an alarm event waits."""
        return self._writer.is_flush_due

    def flush(self) -> int:
        """Write everything buffered in one transaction; returns the records written
        (readings + summaries + alarm events; each summary and event also adds its
        outbox row). Nothing is half-written: on failure the transaction is rolled back,
        the records stay buffered for the next flush and StoreUnavailable is raised.
        Safe to run in a worker thread while ``add_sample`` continues."""
        return self._writer.flush()

    # -- limits (retention.py) -----------------------------------------------------

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
        return self._retention.enforce()

    # -- outbox (outbox.py) --------------------------------------------------------

    def outbox_pending(
        self, limit: int = 500, kinds: Sequence[OutboxKind] = ALARMS_FIRST
    ) -> list[OutboxRow]:
        """Up to ``limit`` (>= 1) unacknowledged rows: all pending rows of ``kinds[0]``
        (oldest first), then of ``kinds[1]``, ... Reading does not remove anything: rows
        stay until ``outbox_ack``. Raises StoreUnavailable."""
        return self._outbox.pending(limit, kinds)

    def outbox_ack(self, ids: Iterable[int]) -> int:
        """Delete the rows the cloud acknowledged; returns how many were deleted. Ids
        not in the outbox (acked twice, or dropped by the cap) are ignored. Raises
        StoreUnavailable (nothing deleted)."""
        return self._outbox.ack(ids)

    def outbox_dropped_total(self) -> int:
        """Summary rows dropped by the outbox cap since the store file was created
        (``stats().outbox_dropped`` counts since this Store opened)."""
        return self._meta.get_int(meta.OUTBOX_DROPPED_KEY, 0)

    # -- cloud sync (meta.py, sync_staging.py; docs/sync.md) -----------------------

    def meta_int(self, key: str, default: int = 0) -> int:
        """An integer from the meta table (``default`` when absent); keys in
        ``edge_agent.store.meta``. Raises StoreUnavailable."""
        return self._meta.get_int(key, default)

    def set_meta_int(self, key: str, value: int) -> None:
        """Raises StoreUnavailable."""
        self._meta.set_int(key, value)

    def meta_text(self, key: str) -> str | None:
        """A text value from the meta_text table (None when absent). Raises StoreUnavailable."""
        return self._meta.get_text(key)

    def set_meta_text(self, key: str, value: str) -> None:
        """Raises StoreUnavailable."""
        self._meta.set_text(key, value)

    def sync_inflight(self) -> InflightBatch | None:
        """The batch staged and not yet acknowledged, if any. Raises StoreUnavailable."""
        return self._sync.inflight()

    def sync_stage(self, batch: InflightBatch, reported_hash: str | None = None) -> None:
        """Persist ``batch`` as the one in flight, before it is first sent, together with
        its sequence as the last one allocated (``meta.sync_sequence``) and, if it carries
        a reported state, that state's version and hash. One transaction, committed with
        ``synchronous=FULL``: after even a power cut the device never reuses a sequence
        the cloud may have stored. Raises ValueError if a batch is already in flight,
        StoreUnavailable on a database error (nothing staged)."""
        self._sync.stage(batch, reported_hash)

    def sync_commit(self, sequence: int) -> int:
        """The cloud acknowledged batch ``sequence``: in one transaction delete its outbox
        rows, forget it as in flight and record it as ``meta.sync_acked_sequence``.
        Returns the outbox rows deleted (rows the cap dropped meanwhile are not counted).
        A sequence that is not in flight (committed already) changes nothing and returns
        0. Raises StoreUnavailable (nothing changed: the batch is resent, and the cloud
        answers it as a duplicate)."""
        return self._sync.commit(sequence)

    def sync_discard(self, sequence: int) -> None:
        """Forget batch ``sequence`` as in flight without touching its outbox rows: the
        cloud refused it and never stored it (they go again in other batches). The
        sequence stays allocated and is never reused. Raises StoreUnavailable."""
        self._sync.discard(sequence)

    def sync_quarantine(self, ids: Iterable[int], reason: str) -> int:
        """Move outbox rows the cloud (or the device's own validation) refused into
        ``sync_quarantine`` with ``reason``, in one transaction; counted in
        ``meta.sync_quarantined``. Returns how many moved (ids no longer in the outbox
        are ignored). Alarm rows too: a row that can never be accepted would otherwise
        block everything queued behind it. Raises StoreUnavailable."""
        return self._sync.quarantine(ids, reason)

    def sync_quarantined(self, limit: int = 100) -> list[tuple[OutboxRow, str]]:
        """The newest ``limit`` quarantined rows with the reason each was refused,
        oldest first."""
        return self._sync.quarantined(limit)

    # -- queries (queries.py) ------------------------------------------------------

    def readings(
        self, channel: str | None, since: float | None = None, limit: int = 1000
    ) -> list[ReadingRow]:
        """The newest ``limit`` (>= 1) flushed readings of ``channel`` (None: of every
        channel) with ts >= since (UNIX seconds; None: no bound), oldest first (by ts,
        then channel). Unknown channel: []."""
        return self._queries.readings(channel, since, limit)

    def summaries(
        self, channel: str | None = None, since: float | None = None, limit: int = 1000
    ) -> list[Summary]:
        """The newest ``limit`` (>= 1) written summaries with start >= since, of one
        channel or all (None), oldest first (by start, then channel)."""
        return self._queries.summaries(channel, since, limit)

    def alarms(self, active_only: bool = False, limit: int = 100) -> list[Alarm]:
        """The newest ``limit`` (>= 1) alarms (current state), newest first; only those
        not cleared if ``active_only``."""
        return self._queries.alarms(active_only, limit)

    def alarm(self, alarm_id: int) -> Alarm:
        """One alarm's current state. Raises AlarmNotFound."""
        return self._queries.alarm(alarm_id)

    def open_alarms(self) -> list[Alarm]:
        """Every active alarm (raised and not cleared, acknowledged or not), oldest first:
        what the alarm engine restores after a restart."""
        return self._queries.open_alarms()

    def alarm_events(self, alarm_id: int | None = None, limit: int = 100) -> list[AlarmEvent]:
        """The newest ``limit`` (>= 1) alarm events (of one alarm, or all), oldest first,
        each with the alarm's snapshot after the change."""
        return self._queries.alarm_events(alarm_id, limit)

    def max_alarm_id(self) -> int:
        """The highest alarm id ever written (0 if none), even if that alarm has since
        been deleted by age: the alarm engine continues numbering from here."""
        return self._meta.get_int(meta.MAX_ALARM_ID_KEY, 0)

    def stats(self) -> StoreStats:
        """The store's size and counters now (see StoreStats)."""
        writer, outbox, retention = self._writer, self._outbox, self._retention
        pending_rows, pending_summaries, pending_events, late = writer.pending()
        with self._db.lock:
            return StoreStats(
                file_bytes=self._db.file_bytes(),
                reading_rows=retention.reading_rows,
                pending_rows=pending_rows,
                pending_summaries=pending_summaries,
                pending_alarm_events=pending_events,
                outbox_rows=dict(outbox.rows),
                samples_added=writer.samples_added,
                samples_rejected=writer.samples_rejected,
                samples_dropped=writer.samples_dropped,
                samples_late=late,
                outbox_added=dict(outbox.added),
                outbox_acked=outbox.acked,
                outbox_dropped=outbox.dropped,
                readings_deleted_age=retention.readings_deleted_age,
                readings_deleted_size=retention.readings_deleted_size,
                summaries_deleted=retention.summaries_deleted,
                alarms_deleted=retention.alarms_deleted,
                flushes=writer.flushes,
                flush_failures=writer.flush_failures,
                last_flush_ts=writer.last_flush_ts,
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
            self._db.close()
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
