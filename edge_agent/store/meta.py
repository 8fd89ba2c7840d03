"""The meta tables and the one list of their keys.

``meta`` holds integers and ``meta_text`` text that must outlive the rows they came
from and survive restarts: the store's own high-water marks and the cloud sync
protocol's state (docs/sync.md). Every key is named here, once; the sync worker and the
twin import them. ``Meta`` reads and writes them on its own; the functions write them
inside another room's transaction, on a connection the caller holds under the lock.
"""

from __future__ import annotations

import sqlite3

from edge_agent.store.database import Database

# -- meta (integers) ------------------------------------------------------------------

MAX_ALARM_ID_KEY = "max_alarm_id"
"""The highest alarm id ever written: the alarm engine numbers on from it."""
OUTBOX_DROPPED_KEY = "outbox_dropped"
"""Summary rows the outbox cap dropped since the file was created."""
SEQUENCE_KEY = "sync_sequence"
"""The last sync sequence allocated (staged); the next batch gets one more."""
ACKED_SEQUENCE_KEY = "sync_acked_sequence"
"""The highest sync sequence the cloud acknowledged."""
REJECTED_KEY = "sync_rejected_batches"
"""Batches the cloud refused as a whole."""
QUARANTINED_KEY = "sync_quarantined"
"""Outbox rows moved to ``sync_quarantine``."""
REPORTED_VERSION_KEY = "sync_reported_version"
"""The version of the last reported state staged for the cloud."""

# -- meta_text ------------------------------------------------------------------------

REPORTED_HASH_KEY = "sync_reported_hash"
"""The hash of the last reported state staged for the cloud."""
DESIRED_KEY = "sync_desired"
"""The last desired state received (JSON), re-applied at start."""

_UPSERT_INT = "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = "
_SET_INT = _UPSERT_INT + "excluded.value"
_RAISE_INT = _UPSERT_INT + "max(value, excluded.value)"
_ADD_INT = _UPSERT_INT + "value + excluded.value"


def read_int(conn: sqlite3.Connection, key: str, default: int) -> int:
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return default if row is None else int(row[0])


def write_int(conn: sqlite3.Connection, key: str, value: int) -> None:
    conn.execute(_SET_INT, (key, int(value)))


def raise_int(conn: sqlite3.Connection, key: str, value: int) -> None:
    """Set ``key`` to ``value`` unless it already holds more (a high-water mark)."""
    conn.execute(_RAISE_INT, (key, int(value)))


def add_int(conn: sqlite3.Connection, key: str, n: int) -> None:
    """Add ``n`` to the counter ``key`` (absent counts as 0)."""
    conn.execute(_ADD_INT, (key, int(n)))


def read_text(conn: sqlite3.Connection, key: str) -> str | None:
    row = conn.execute("SELECT value FROM meta_text WHERE key = ?", (key,)).fetchone()
    return None if row is None else str(row[0])


def write_text(conn: sqlite3.Connection, key: str, value: str) -> None:
    conn.execute(
        "INSERT INTO meta_text (key, value) VALUES (?, ?)"
        " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (key, value),
    )


class Meta:
    """The meta tables, each access under the database lock. Every method raises
    StoreUnavailable on a database error."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def get_int(self, key: str, default: int) -> int:
        with self._db.locked() as conn:
            return read_int(conn, key, default)

    def set_int(self, key: str, value: int) -> None:
        with self._db.locked() as conn:
            write_int(conn, key, value)

    def get_text(self, key: str) -> str | None:
        with self._db.locked() as conn:
            return read_text(conn, key)

    def set_text(self, key: str, value: str) -> None:
        with self._db.locked() as conn:
            write_text(conn, key, value)
