"""The outbox: what awaits the cloud's acknowledgement, and its counters.

Rows are appended by the flush, in the transaction of what they describe (an alarm
event, a closed summary). Nothing deletes them but an acknowledgement (``ack``, or the
sync staging's commit), a quarantine, and the cap, which drops the oldest summary rows
(counted), never alarm rows.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from edge_agent.store import meta
from edge_agent.store.config import StoreConfig
from edge_agent.store.database import Database, check_limit, transaction


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


def payload_text(data: dict[str, Any]) -> str:
    """Compact JSON: the form of an outbox payload (and of a stored alarm event)."""
    return json.dumps(data, separators=(",", ":"))


@dataclass(frozen=True, slots=True)
class Appended:
    """What one ``Outbox.append`` did, for the counters once its transaction commits."""

    added: dict[str, int]
    """Rows added, by kind."""
    dropped: int
    """Summary rows the cap dropped to make room."""


class Outbox:
    """The ``outbox`` table and its counters (those since this Store opened).

    The counters are read and written under the database lock."""

    def __init__(self, db: Database, config: StoreConfig) -> None:
        self._db = db
        self._max_rows = config.outbox_max_rows
        self.rows: dict[str, int] = {}
        """Rows awaiting acknowledgement, by kind."""
        self.added = {k.value: 0 for k in OutboxKind}
        self.acked = 0
        self.dropped = 0
        self.recount(db.conn)

    def recount(self, conn: sqlite3.Connection, acked: int = 0) -> None:
        """Count the rows again after a deletion that removed ``acked`` acknowledged
        rows (0 for any other deletion)."""
        counts = {k.value: 0 for k in OutboxKind}
        for kind, n in conn.execute("SELECT kind, count(*) FROM outbox GROUP BY kind"):
            counts[kind] = int(n)
        self.rows = counts
        self.acked += acked

    def append(self, conn: sqlite3.Connection, rows: Sequence[tuple[str, float, str]]) -> Appended:
        """Insert ``(kind, created_at, payload)`` rows, then apply the cap; inside the
        caller's transaction (call ``account`` once it commits). Raises sqlite3.Error."""
        added = {k.value: 0 for k in OutboxKind}
        if rows:
            conn.executemany(
                "INSERT INTO outbox (kind, created_at, payload) VALUES (?, ?, ?)", rows
            )
            for kind, _, _ in rows:
                added[kind] += 1
        dropped = self._cap(conn, added)
        if dropped:
            # Persisted too: the twin reports the total since the store was created.
            meta.add_int(conn, meta.OUTBOX_DROPPED_KEY, dropped)
        return Appended(added, dropped)

    def _cap(self, conn: sqlite3.Connection, added: dict[str, int]) -> int:
        excess = sum(self.rows.values()) + sum(added.values()) - self._max_rows
        if excess <= 0:
            return 0
        summaries = self.rows[OutboxKind.SUMMARY.value] + added[OutboxKind.SUMMARY.value]
        # Past the cap the oldest summaries go; alarm rows are kept even over the cap.
        k = min(excess, summaries)
        if k <= 0:
            return 0
        cur = conn.execute(
            "DELETE FROM outbox WHERE id IN"
            " (SELECT id FROM outbox WHERE kind = ? ORDER BY id LIMIT ?)",
            (OutboxKind.SUMMARY.value, k),
        )
        return int(cur.rowcount)

    def account(self, appended: Appended) -> None:
        """Account a committed ``append``."""
        for kind, n in appended.added.items():
            self.rows[kind] += n
            self.added[kind] += n
        self.rows[OutboxKind.SUMMARY.value] -= appended.dropped
        self.dropped += appended.dropped

    def pending(self, limit: int, kinds: Sequence[OutboxKind]) -> list[OutboxRow]:
        """The rows of ``Store.outbox_pending``. Raises ValueError, StoreUnavailable."""
        check_limit(limit)
        rows: list[OutboxRow] = []
        with self._db.locked() as conn:
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

    def ack(self, ids: Iterable[int]) -> int:
        """Delete the acknowledged rows ``ids`` (unknown ids ignored); returns how many
        went. Raises StoreUnavailable (nothing deleted)."""
        keys = [(int(i),) for i in ids]
        if not keys:
            return 0
        with self._db.locked() as conn:
            with transaction(conn):
                deleted = int(conn.executemany("DELETE FROM outbox WHERE id = ?", keys).rowcount)
            self.recount(conn, acked=deleted)
        return deleted
