"""transaction(): commits on a normal exit, rolls back on any exception (which
propagates), and a durable one commits with synchronous=FULL then returns to NORMAL."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge_agent.store.database import Database, transaction

FULL, NORMAL = 2, 1


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    db = Database(tmp_path / "t.db")
    db.configure()
    db.conn.execute("CREATE TABLE t (x INTEGER)")
    yield db
    db.close()


def rows(path: Path) -> list[int]:
    """What another connection sees: only committed rows."""
    other = sqlite3.connect(path)
    try:
        return [x for (x,) in other.execute("SELECT x FROM t ORDER BY x")]
    finally:
        other.close()


def synchronous(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA synchronous").fetchone()[0])


def test_a_normal_exit_commits(db: Database) -> None:
    with transaction(db.conn):
        db.conn.execute("INSERT INTO t VALUES (1)")
        db.conn.execute("INSERT INTO t VALUES (2)")
        assert db.conn.in_transaction and rows(db.path) == []
    assert not db.conn.in_transaction
    assert rows(db.path) == [1, 2]


@pytest.mark.parametrize("error", [ValueError("a bug"), sqlite3.OperationalError("disk")])
def test_an_exception_rolls_everything_back_and_propagates(db: Database, error: Exception) -> None:
    with pytest.raises(type(error)), transaction(db.conn):
        db.conn.execute("INSERT INTO t VALUES (1)")
        raise error
    assert not db.conn.in_transaction
    assert rows(db.path) == []


def test_a_durable_transaction_commits_with_full_then_returns_to_normal(db: Database) -> None:
    assert synchronous(db.conn) == NORMAL
    with transaction(db.conn, durable=True):
        assert synchronous(db.conn) == FULL
        db.conn.execute("INSERT INTO t VALUES (1)")
    assert synchronous(db.conn) == NORMAL
    with pytest.raises(ValueError), transaction(db.conn, durable=True):
        raise ValueError("a bug")
    assert synchronous(db.conn) == NORMAL
    assert rows(db.path) == [1]


def test_a_begin_that_cannot_lock_raises_and_leaves_nothing_open(db: Database) -> None:
    other = sqlite3.connect(db.path, isolation_level=None, timeout=0.0)
    try:
        other.execute("BEGIN IMMEDIATE")  # holds the write lock
        db.conn.execute("PRAGMA busy_timeout = 0")
        with (
            pytest.raises(sqlite3.OperationalError, match="locked"),
            transaction(db.conn, durable=True),
        ):
            pytest.fail("the body must not run without the lock")
        assert not db.conn.in_transaction
        assert synchronous(db.conn) == NORMAL
        other.execute("ROLLBACK")
    finally:
        other.close()
    with transaction(db.conn):  # usable again
        db.conn.execute("INSERT INTO t VALUES (3)")
    assert rows(db.path) == [3]
