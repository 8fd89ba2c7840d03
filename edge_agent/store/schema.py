"""The store's schema and its migrations, versioned with ``PRAGMA user_version``.

``MIGRATIONS[i]`` takes a database from version ``i`` to ``i + 1``. Each runs in its own
transaction together with the ``user_version`` bump, so a crash or an error mid-migration
leaves the file at the previous version, never half-migrated. Add a migration by
appending a function; never edit one that has shipped.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence

from edge_agent.store.blocks import BLOCK_MAX_ROWS, insert_blocks
from edge_agent.store.database import transaction
from edge_agent.store.errors import StoreSchemaTooNew

Migration = Callable[[sqlite3.Connection], None]


def _v1(conn: sqlite3.Connection) -> None:
    # No STRICT tables: they need SQLite >= 3.37, older than some boards ship.
    # Channel names are stored once; readings carry a small integer (the readings table
    # is by far the largest, and SD cards are small and wear with every byte written).
    conn.execute("CREATE TABLE channels (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE)")
    # rowid order is insertion order: the size cap deletes the oldest rowids first.
    # The one index serves per-channel queries and the per-channel age cut-off.
    conn.execute(
        "CREATE TABLE readings ("
        " ts REAL NOT NULL, channel_id INTEGER NOT NULL, value REAL NOT NULL,"
        " forecast REAL, score REAL)"
    )
    conn.execute("CREATE INDEX readings_channel_ts ON readings (channel_id, ts)")
    conn.execute(
        "CREATE TABLE summaries ("
        " channel_id INTEGER NOT NULL, start REAL NOT NULL, interval_s REAL NOT NULL,"
        " count INTEGER NOT NULL, min REAL NOT NULL, max REAL NOT NULL,"
        " mean REAL NOT NULL, std REAL NOT NULL, last REAL NOT NULL, last_ts REAL NOT NULL,"
        " error_count INTEGER NOT NULL, error_mean REAL, error_mae REAL, error_rmse REAL,"
        " error_max_abs REAL, score_max REAL,"
        " PRIMARY KEY (channel_id, start)) WITHOUT ROWID"
    )
    # For queries across channels and the age cut-off; a few rows a minute, cheap to keep.
    conn.execute("CREATE INDEX summaries_start ON summaries (start)")
    conn.execute(
        "CREATE TABLE alarms ("
        " id INTEGER PRIMARY KEY, rule TEXT NOT NULL, channel TEXT NOT NULL,"
        " kind TEXT NOT NULL, severity TEXT NOT NULL, state TEXT NOT NULL,"
        " raised_at REAL NOT NULL, value REAL, message TEXT NOT NULL,"
        " acked_at REAL, acked_by TEXT, cleared_at REAL)"
    )
    conn.execute("CREATE INDEX alarms_state ON alarms (state)")
    conn.execute(
        "CREATE TABLE alarm_events ("
        " id INTEGER PRIMARY KEY, alarm_id INTEGER NOT NULL, kind TEXT NOT NULL,"
        " ts REAL NOT NULL, payload TEXT NOT NULL)"
    )
    conn.execute("CREATE INDEX alarm_events_alarm ON alarm_events (alarm_id)")
    # AUTOINCREMENT: an id is never reused, so a late or repeated ack from the sync worker
    # can never delete a newer row that happened to get a recycled id.
    conn.execute(
        "CREATE TABLE outbox ("
        " id INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL,"
        " created_at REAL NOT NULL, payload TEXT NOT NULL)"
    )
    conn.execute("CREATE INDEX outbox_kind_id ON outbox (kind, id)")
    # High-water marks that must survive the deletion of the rows they came from.
    conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL)")


def _v2(conn: sqlite3.Connection) -> None:
    # The cloud sync (docs/sync.md). The batch being sent, exactly as sent: it is resent
    # byte for byte (same sequence) until the cloud acknowledges it. At most one row.
    conn.execute(
        "CREATE TABLE sync_inflight ("
        " sequence INTEGER PRIMARY KEY, created_at REAL NOT NULL, body BLOB NOT NULL,"
        " row_ids TEXT NOT NULL, alarm_rows INTEGER NOT NULL, summary_rows INTEGER NOT NULL,"
        " reported_version INTEGER)"
    )
    # Outbox rows the cloud refused on their own (422 on a batch of that one row): kept,
    # not resent, so one bad row cannot block the queue. id: the outbox id it had.
    conn.execute(
        "CREATE TABLE sync_quarantine ("
        " id INTEGER PRIMARY KEY, kind TEXT NOT NULL, created_at REAL NOT NULL,"
        " payload TEXT NOT NULL, reason TEXT NOT NULL, quarantined_at REAL NOT NULL)"
    )
    # Text-valued state that must survive restarts (the last desired state received,
    # the hash of the last reported state); integers stay in meta.
    conn.execute("CREATE TABLE meta_text (key TEXT PRIMARY KEY, value TEXT NOT NULL)")


def _v3(conn: sqlite3.Connection) -> None:
    # SD-card wear (docs/store.md#write-rate). An index on (channel_id, ts) takes each
    # flush's rows at one place per channel inside the tree: every commit rewrites one
    # leaf per channel, and the leaves split in half (SQLite packs pages full only for
    # appends at the right edge of a tree), so the index wrote more than the readings.
    # An index on ts alone is appended at its right edge. Per-channel queries walk it
    # and skip the other channels' rows (a handful of channels on a device).
    conn.execute("DROP INDEX IF EXISTS readings_channel_ts")
    conn.execute("CREATE INDEX readings_ts ON readings (ts)")


def _v4(conn: sqlite3.Connection) -> None:
    # Why each alarm was raised (AlarmReason.to_dict() as JSON; docs/alarms.md). NULL for
    # alarms raised before: the event payloads of alarm_events carry it in their alarm.
    conn.execute("ALTER TABLE alarms ADD COLUMN reason TEXT")


def _v5(conn: sqlite3.Connection) -> None:
    # SD-card wear (docs/store.md#write-rate): readings as compressed blocks, one row per
    # flush, instead of a row (and an index entry) per reading. The indexes take a few
    # entries a minute, appended at their right edge.
    conn.execute(
        "CREATE TABLE reading_blocks ("
        " id INTEGER PRIMARY KEY, ts_first REAL NOT NULL, ts_last REAL NOT NULL,"
        " n INTEGER NOT NULL, data BLOB NOT NULL)"
    )
    conn.execute("CREATE INDEX reading_blocks_ts_last ON reading_blocks (ts_last)")
    # The age cut-off trims the blocks that straddle it (ts_first before it).
    conn.execute("CREATE INDEX reading_blocks_ts_first ON reading_blocks (ts_first)")
    last = 0
    while True:
        rows = conn.execute(
            "SELECT rowid, ts, channel_id, value, forecast, score FROM readings"
            " WHERE rowid > ? ORDER BY rowid LIMIT ?",
            (last, BLOCK_MAX_ROWS),
        ).fetchall()
        if not rows:
            break
        last = rows[-1][0]
        nan = float("nan")
        insert_blocks(
            conn,
            [r[1] for r in rows],
            [r[2] for r in rows],
            [r[3] for r in rows],
            [nan if r[4] is None else r[4] for r in rows],
            [nan if r[5] is None else r[5] for r in rows],
        )
    conn.execute("DROP TABLE readings")


MIGRATIONS: tuple[Migration, ...] = (_v1, _v2, _v3, _v4, _v5)
SCHEMA_VERSION = len(MIGRATIONS)


def schema_version(conn: sqlite3.Connection) -> int:
    row = conn.execute("PRAGMA user_version").fetchone()
    return int(row[0])


def migrate(conn: sqlite3.Connection, migrations: Sequence[Migration] = MIGRATIONS) -> int:
    """Bring the database up to ``len(migrations)``; returns the version it ended at.

    ``conn`` must be in autocommit mode (``isolation_level=None``). Raises
    StoreSchemaTooNew if the file is newer than the migrations know; a migration's own
    exception propagates after its transaction is rolled back (the file keeps the
    version it had before that step).
    """
    version = schema_version(conn)
    if version > len(migrations):
        raise StoreSchemaTooNew(version, len(migrations))
    for target in range(version + 1, len(migrations) + 1):
        with transaction(conn):
            migrations[target - 1](conn)
            conn.execute(f"PRAGMA user_version = {target:d}")
    return len(migrations)
