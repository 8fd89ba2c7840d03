"""Schema versions: a new file is at SCHEMA_VERSION; migrations run in order, each
atomically; a newer file or a non-database file is refused."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from edge_agent.store import Store, StoreConfig
from edge_agent.store.alarm_log import ALARM_COLUMNS, alarm_from_row
from edge_agent.store.errors import StoreSchemaTooNew, StoreUnreadable
from edge_agent.store.schema import MIGRATIONS, SCHEMA_VERSION, migrate, schema_version
from edgetwin_common.testing import FakeClock

from .blockrows import load_readings


def connect(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(path, isolation_level=None)


def next_add_unit(conn: sqlite3.Connection) -> None:
    """A fake next migration: channels get a unit column."""
    conn.execute("ALTER TABLE channels ADD COLUMN unit TEXT NOT NULL DEFAULT ''")


def next_broken(conn: sqlite3.Connection) -> None:
    conn.execute("ALTER TABLE channels ADD COLUMN unit TEXT")
    raise RuntimeError("bug in a migration")


def test_new_file_is_at_the_current_version(tmp_path: Path, clock: FakeClock) -> None:
    Store(tmp_path / "s.db", StoreConfig(), clock).close()
    conn = connect(tmp_path / "s.db")
    try:
        assert schema_version(conn) == SCHEMA_VERSION == len(MIGRATIONS) == 5
    finally:
        conn.close()


def test_v0_to_current_on_an_empty_file(tmp_path: Path) -> None:
    conn = connect(tmp_path / "s.db")
    try:
        assert schema_version(conn) == 0
        assert migrate(conn) == SCHEMA_VERSION
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert {"channels", "reading_blocks", "summaries", "alarms", "alarm_events"} <= tables
        assert "outbox" in tables and "readings" not in tables
        assert {"sync_inflight", "sync_quarantine", "meta_text"} <= tables
        assert migrate(conn) == SCHEMA_VERSION  # idempotent
    finally:
        conn.close()


def test_v1_to_v2_adds_the_sync_tables_and_keeps_the_data(tmp_path: Path) -> None:
    conn = connect(tmp_path / "s.db")
    try:
        assert migrate(conn, MIGRATIONS[:1]) == 1
        conn.execute("INSERT INTO outbox (kind, created_at, payload) VALUES ('summary', 1, '{}')")
        conn.execute("INSERT INTO meta (key, value) VALUES ('max_alarm_id', 7)")
        assert migrate(conn, MIGRATIONS[:2]) == 2
        assert conn.execute("SELECT count(*) FROM outbox").fetchone() == (1,)
        assert conn.execute("SELECT count(*) FROM sync_inflight").fetchone() == (0,)
    finally:
        conn.close()


def test_v3_indexes_readings_by_time_alone_and_keeps_them(tmp_path: Path) -> None:
    conn = connect(tmp_path / "s.db")
    try:
        assert migrate(conn, MIGRATIONS[:2]) == 2
        conn.execute("INSERT INTO channels (id, name) VALUES (1, 'temp')")
        conn.execute("INSERT INTO readings (ts, channel_id, value) VALUES (5.0, 1, 20.5)")
        assert migrate(conn, MIGRATIONS[:3]) == 3
        indexes = {r[1] for r in conn.execute("PRAGMA index_list(readings)")}
        assert indexes == {"readings_ts"}
        assert conn.execute("SELECT ts, value FROM readings").fetchall() == [(5.0, 20.5)]
        plan = conn.execute(
            "EXPLAIN QUERY PLAN SELECT ts FROM readings WHERE channel_id = 1 AND ts >= 0"
            " ORDER BY ts DESC LIMIT 5"
        ).fetchall()
        assert "readings_ts" in str(plan)
    finally:
        conn.close()


def test_a_next_migration_keeps_the_data(tmp_path: Path, clock: FakeClock) -> None:
    with Store(tmp_path / "s.db", StoreConfig(), clock) as store:
        store.add_sample(1.0, "temp", 20.0, None, None)
    conn = connect(tmp_path / "s.db")
    try:
        assert migrate(conn, (*MIGRATIONS, next_add_unit)) == SCHEMA_VERSION + 1
        assert schema_version(conn) == SCHEMA_VERSION + 1
        assert conn.execute("SELECT name, unit FROM channels").fetchall() == [("temp", "")]
        assert load_readings(conn) == 1
        assert conn.execute("SELECT value FROM temp.readings").fetchall() == [(20.0,)]
    finally:
        conn.close()


def test_a_failing_migration_leaves_the_previous_version(tmp_path: Path, clock: FakeClock) -> None:
    Store(tmp_path / "s.db", StoreConfig(), clock).close()
    conn = connect(tmp_path / "s.db")
    try:
        with pytest.raises(RuntimeError, match="bug in a migration"):
            migrate(conn, (*MIGRATIONS, next_broken))
        assert schema_version(conn) == SCHEMA_VERSION
        columns = [r[1] for r in conn.execute("PRAGMA table_info(channels)")]
        assert "unit" not in columns  # the ALTER was rolled back with it
    finally:
        conn.close()
    Store(tmp_path / "s.db", StoreConfig(), clock).close()  # still opens


def test_a_newer_file_is_refused(tmp_path: Path, clock: FakeClock) -> None:
    Store(tmp_path / "s.db", StoreConfig(), clock).close()
    conn = connect(tmp_path / "s.db")
    conn.execute("PRAGMA user_version = 7")
    conn.close()
    with pytest.raises(StoreSchemaTooNew) as info:
        Store(tmp_path / "s.db", StoreConfig(), clock)
    assert (info.value.found, info.value.known) == (7, SCHEMA_VERSION)


def test_a_file_that_is_not_a_database_is_refused(tmp_path: Path, clock: FakeClock) -> None:
    (tmp_path / "s.db").write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreUnreadable):
        Store(tmp_path / "s.db", StoreConfig(), clock)


def test_v4_adds_the_reason_and_old_alarms_read_without_one(tmp_path: Path) -> None:
    conn = connect(tmp_path / "s.db")
    try:
        assert migrate(conn, MIGRATIONS[:3]) == 3
        conn.execute(
            "INSERT INTO alarms (id, rule, channel, kind, severity, state, raised_at, value,"
            " message) VALUES (1, 'hot', 'temp', 'value_above', 'warning', 'cleared', 5.0,"
            " 90.0, 'temp 90 >= 85')"
        )
        assert migrate(conn, MIGRATIONS[:4]) == 4
        row = conn.execute(f"SELECT {ALARM_COLUMNS} FROM alarms").fetchone()
        alarm = alarm_from_row(row)
        assert (alarm.rule, alarm.value, alarm.reason) == ("hot", 90.0, None)
    finally:
        conn.close()


def test_v5_moves_the_readings_into_blocks_bit_for_bit(tmp_path: Path, clock: FakeClock) -> None:
    conn = connect(tmp_path / "s.db")
    rows = [
        (1000.0 + i * 0.1, 1 + i % 3, 20.0 + i / 7, None if i % 5 else 19.9 + i / 7, i / 3)
        for i in range(5000)  # more than one block
    ]
    try:
        assert migrate(conn, MIGRATIONS[:4]) == 4
        conn.executemany(
            "INSERT INTO channels (id, name) VALUES (?, ?)", [(1, "a"), (2, "b"), (3, "c")]
        )
        conn.executemany("INSERT INTO readings VALUES (?, ?, ?, ?, ?)", rows)
        assert migrate(conn) == 5
        assert conn.execute("SELECT count(*), sum(n) FROM reading_blocks").fetchone() == (2, 5000)
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert "readings" not in tables
        load_readings(conn)
        assert conn.execute("SELECT * FROM temp.readings").fetchall() == rows
    finally:
        conn.close()
    # and the store reads them: the newest of channel b, with None where none was made
    with Store(tmp_path / "s.db", StoreConfig(), clock) as store:
        newest = store.readings("b", limit=2)
        assert [(r.ts, r.value, r.forecast, r.score) for r in newest] == [
            (rows[i][0], rows[i][2], rows[i][3], rows[i][4]) for i in (4996, 4999)
        ]
