"""Retention: the age limits and the size cap (``Store.enforce_limits``), and the count
of stored readings the size cap estimates from.

Every deletion is followed by ``incremental_vacuum`` and a TRUNCATE checkpoint, so the
freed pages go back to the file system and the WAL, which holds the deletions until the
checkpoint, never balloons past the cap it is enforcing.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Callable

import numpy as np

from edge_agent.alarms.model import AlarmState
from edge_agent.store.blocks import block_times, trim_block
from edge_agent.store.config import StoreConfig
from edge_agent.store.database import Database, transaction
from edge_agent.store.errors import StoreUnavailable

SIZE_HIGH_WATER = 0.9
"""``enforce_limits`` trims once the files pass this fraction of ``max_bytes`` ..."""
SIZE_LOW_WATER = 0.8
"""... down to this fraction: the gap is room for what is written until the next call."""
DELETE_CHUNK_BLOCKS = 100
"""Reading blocks deleted per transaction by the age limit (bounds the WAL a deletion
needs: at most about 400,000 readings)."""
_MAX_TRIM_STEPS = 200

DELETED_KEYS = ("readings_age", "readings_size", "summaries_age", "summaries_size", "alarms_age")
"""The keys of what ``Retention.enforce`` returns."""


class Retention:
    """Deletes what is too old or too much, and counts it (counters since this Store
    opened, read and written under the database lock). clock: UNIX seconds, the age
    reference of an empty store."""

    def __init__(self, db: Database, config: StoreConfig, clock: Callable[[], float]) -> None:
        self._db = db
        self._config = config
        self._clock = clock
        (rows,) = db.conn.execute("SELECT coalesce(sum(n), 0) FROM reading_blocks").fetchone()
        self.reading_rows = int(rows)
        """Readings stored (flushed and not deleted)."""
        self.readings_deleted_age = 0
        self.readings_deleted_size = 0
        self.summaries_deleted = 0
        self.alarms_deleted = 0

    def count_written(self, readings: int) -> None:
        """Account ``readings`` rows a committed flush added."""
        self.reading_rows += readings

    def enforce(self) -> dict[str, int]:
        """What ``Store.enforce_limits`` does; returns the rows deleted by DELETED_KEYS.
        Raises StoreUnavailable (the deletions already committed stay done)."""
        with self._db.lock:
            try:
                counts = self._delete_by_age()
                self._trim_to_size(counts)
            except sqlite3.Error as exc:
                raise StoreUnavailable(f"enforce_limits failed: {exc}") from exc
        return counts

    def _delete_by_age(self) -> dict[str, int]:
        conn = self._db.conn
        cfg = self._config
        counts = dict.fromkeys(DELETED_KEYS, 0)
        ref = self._reference_time()
        cutoff = ref - cfg.readings_max_age_s
        # Whole blocks whose newest reading is past the cut-off, in chunks, each its own
        # transaction followed by a checkpoint: after a long outage the backlog can be
        # many blocks, and one huge DELETE would first copy them all into the WAL (past
        # the size cap). Then the blocks straddling the cut-off lose their older part.
        while True:
            n, blocks = self._delete_blocks(
                "SELECT id FROM reading_blocks WHERE ts_last < ? LIMIT ?",
                (cutoff, DELETE_CHUNK_BLOCKS),
            )
            self._account({"readings_age": n})
            counts["readings_age"] += n
            if blocks < DELETE_CHUNK_BLOCKS:
                break
            self._reclaim()
        straddling = conn.execute(
            "SELECT id FROM reading_blocks WHERE ts_first < ?", (cutoff,)
        ).fetchall()
        for (block_id,) in straddling:
            with transaction(conn):
                n = trim_block(conn, block_id, block_times(conn, block_id) < cutoff)
            self._account({"readings_age": n})
            counts["readings_age"] += n
        with transaction(conn):
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
                conn.execute(
                    "DELETE FROM alarm_events WHERE alarm_id NOT IN (SELECT id FROM alarms)"
                )
        self._account(history)
        counts.update(history)
        if any(counts.values()):
            self._reclaim()
        return counts

    def _trim_to_size(self, counts: dict[str, int]) -> None:
        conn = self._db.conn
        high = int(self._config.max_bytes * SIZE_HIGH_WATER)
        low = int(self._config.max_bytes * SIZE_LOW_WATER)
        if self._db.file_bytes() <= high:
            return
        for _ in range(_MAX_TRIM_STEPS):
            size = self._db.file_bytes()
            if size <= low:
                break
            step = dict.fromkeys(DELETED_KEYS, 0)
            rows = self.reading_rows
            if rows > 0:
                # Rows to delete, from the average on-disk cost of a row; at most a tenth
                # of them per step so the WAL (which holds the deletions until the
                # checkpoint) stays small.
                per_row = max(size / rows, 1.0)
                k = min(rows, max(1000, rows // 10), math.ceil((size - low) / per_row) + 1)
                step["readings_size"] = self._delete_oldest(k)
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

    def _delete_oldest(self, k: int) -> int:
        """Delete the ``k`` oldest readings in write order: the oldest whole blocks, then
        the head of the next one. Returns the readings deleted."""
        conn = self._db.conn
        with transaction(conn):
            whole = conn.execute(
                "SELECT id, n FROM (SELECT id, n, sum(n) OVER (ORDER BY id) AS upto"
                " FROM reading_blocks) WHERE upto <= ?",
                (k,),
            ).fetchall()
            conn.executemany("DELETE FROM reading_blocks WHERE id = ?", [(i,) for i, _ in whole])
            deleted = sum(int(n) for _, n in whole)
            head = conn.execute("SELECT id, n FROM reading_blocks ORDER BY id LIMIT 1").fetchone()
            if deleted < k and head is not None:
                drop = np.arange(head[1]) < k - deleted
                deleted += trim_block(conn, head[0], drop)
        return deleted

    def _delete_blocks(self, select_ids: str, args: tuple[float, ...]) -> tuple[int, int]:
        """Delete the reading blocks ``select_ids`` names, in one transaction; returns
        (readings, blocks) deleted."""
        conn = self._db.conn
        with transaction(conn):
            (readings, blocks) = conn.execute(
                f"SELECT coalesce(sum(n), 0), count(*) FROM reading_blocks"
                f" WHERE id IN ({select_ids})",
                args,
            ).fetchone()
            conn.execute(f"DELETE FROM reading_blocks WHERE id IN ({select_ids})", args)
        return int(readings), int(blocks)

    def _account(self, counts: dict[str, int]) -> None:
        """Update the counters after a committed deletion."""
        age, size = counts.get("readings_age", 0), counts.get("readings_size", 0)
        self.reading_rows -= age + size
        self.readings_deleted_age += age
        self.readings_deleted_size += size
        self.summaries_deleted += counts.get("summaries_age", 0)
        self.summaries_deleted += counts.get("summaries_size", 0)
        self.alarms_deleted += counts.get("alarms_age", 0)

    def _reclaim(self) -> None:
        # incremental_vacuum frees one page per step and the sqlite3 module's execute()
        # steps once (fetchall() does not help: it yields no rows); executescript()
        # steps it to the end. Then the checkpoint copies the shrunk pages home and
        # truncates both files.
        self._db.conn.executescript("PRAGMA incremental_vacuum;")
        self._db.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()

    def _reference_time(self) -> float:
        newest: float | None = None
        conn = self._db.conn
        (ts,) = conn.execute("SELECT max(ts_last) FROM reading_blocks").fetchone()
        if ts is not None:
            newest = float(ts)
        (end,) = conn.execute("SELECT max(start + interval_s) FROM summaries").fetchone()
        if end is not None and (newest is None or end > newest):
            newest = float(end)
        return self._clock() if newest is None else newest
