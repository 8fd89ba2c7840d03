"""The cloud sync's side of the outbox (docs/sync.md): the batch in flight, persisted
before it is first sent and forgotten in the transaction that deletes its rows, and the
quarantine of rows the cloud refused. Its meta keys are in ``edge_agent.store.meta``."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from edge_agent.store import meta
from edge_agent.store.database import Database, check_limit, transaction
from edge_agent.store.outbox import Outbox, OutboxKind, OutboxRow

QUARANTINE_MAX_ROWS = 10_000
"""Rows kept in ``sync_quarantine``; past it the oldest go (they are already counted)."""


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


class SyncStaging:
    """The ``sync_inflight`` and ``sync_quarantine`` tables. Deletions from the outbox
    are accounted in ``outbox``'s counters. clock: UNIX seconds (quarantine times)."""

    def __init__(self, db: Database, outbox: Outbox, clock: Callable[[], float]) -> None:
        self._db = db
        self._outbox = outbox
        self._clock = clock

    def inflight(self) -> InflightBatch | None:
        """The batch staged and not yet acknowledged, if any. Raises StoreUnavailable."""
        with self._db.locked() as conn:
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

    def stage(self, batch: InflightBatch, reported_hash: str | None) -> None:
        """What ``Store.sync_stage`` does. Raises ValueError, StoreUnavailable."""
        with self._db.locked() as conn, transaction(conn, durable=True):
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
            meta.raise_int(conn, meta.SEQUENCE_KEY, batch.sequence)
            if batch.reported_version is not None:
                meta.raise_int(conn, meta.REPORTED_VERSION_KEY, batch.reported_version)
                if reported_hash is not None:
                    meta.write_text(conn, meta.REPORTED_HASH_KEY, reported_hash)

    def commit(self, sequence: int) -> int:
        """What ``Store.sync_commit`` does; returns the outbox rows deleted. Raises
        StoreUnavailable (nothing changed)."""
        with self._db.locked() as conn:
            with transaction(conn):
                row = conn.execute(
                    "SELECT row_ids FROM sync_inflight WHERE sequence = ?", (sequence,)
                ).fetchone()
                if row is None:
                    return 0
                keys = [(int(i),) for i in json.loads(row[0])]
                cur = conn.executemany("DELETE FROM outbox WHERE id = ?", keys)
                deleted = max(int(cur.rowcount), 0) if keys else 0
                conn.execute("DELETE FROM sync_inflight WHERE sequence = ?", (sequence,))
                meta.raise_int(conn, meta.ACKED_SEQUENCE_KEY, sequence)
            self._outbox.recount(conn, acked=deleted)
        return deleted

    def discard(self, sequence: int) -> None:
        """Forget batch ``sequence`` as in flight; its rows stay. Raises StoreUnavailable."""
        with self._db.locked() as conn:
            conn.execute("DELETE FROM sync_inflight WHERE sequence = ?", (sequence,))

    def quarantine(self, ids: Iterable[int], reason: str) -> int:
        """What ``Store.sync_quarantine`` does; returns how many rows moved. Raises
        StoreUnavailable (nothing moved)."""
        keys = [int(i) for i in ids]
        if not keys:
            return 0
        now = self._clock()
        with self._db.locked() as conn:
            with transaction(conn):
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
                    meta.add_int(conn, meta.QUARANTINED_KEY, moved)
                    conn.execute(
                        "DELETE FROM sync_quarantine WHERE id IN (SELECT id FROM"
                        " sync_quarantine ORDER BY id DESC LIMIT -1 OFFSET ?)",
                        (QUARANTINE_MAX_ROWS,),
                    )
            self._outbox.recount(conn)
        return moved

    def quarantined(self, limit: int) -> list[tuple[OutboxRow, str]]:
        """The newest ``limit`` (>= 1) quarantined rows with their reasons, oldest first.
        Raises ValueError, StoreUnavailable."""
        check_limit(limit)
        with self._db.locked() as conn:
            cur = conn.execute(
                "SELECT id, kind, created_at, payload, reason FROM sync_quarantine"
                " ORDER BY id DESC LIMIT ?",
                (limit,),
            )
            found = [(OutboxRow(i, OutboxKind(k), t, p), r) for i, k, t, p, r in cur]
        found.reverse()
        return found
