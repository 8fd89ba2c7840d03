"""Engines for SQLite and PostgreSQL, and schema migrations (Alembic, run in code).

``make_engine(url)`` sets each backend up for concurrent writers: SQLite gets WAL, a busy
timeout and ``BEGIN IMMEDIATE`` transactions (a writer takes the lock at the start, so two
ingests never deadlock upgrading a read lock); PostgreSQL gets a connection pool with
pre-ping, since several replicas share one server.

``upgrade(engine)`` brings the schema to the newest migration; on PostgreSQL it holds an
advisory lock while doing so, so replicas starting together migrate once.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import weakref
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.exc import OperationalError

from cloud_sync.errors import DatabaseUnavailable

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
_MIGRATION_LOCK = 0x6564_6774_7769_6E  # any constant; "edgtwin", shared by all replicas
SQLITE_BUSY_TIMEOUT_MS = 10_000
READ_ONLY_OPTION = "cloud_sync_read_only"
"""Execution option: this connection only reads (``read_connection``)."""


def make_engine(url: str, pool_size: int = 5) -> Engine:
    """An engine for a normalized URL (``cloud_sync.config.normalize_database_url``).

    Opens no connection yet; the first use raises OperationalError if the database is
    unreachable (``upgrade`` turns that into DatabaseUnavailable).
    """
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})

        @event.listens_for(engine, "connect")
        def _sqlite_connect(dbapi_conn: sqlite3.Connection, _record: Any) -> None:
            # Take transaction control from pysqlite so "begin" below is the only BEGIN.
            dbapi_conn.isolation_level = None
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            # WAL + NORMAL: a power cut loses at most the last transactions, never corrupts.
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Any) -> None:
            if conn.get_execution_options().get(READ_ONLY_OPTION):
                conn.exec_driver_sql("BEGIN")  # a WAL snapshot: waits for no writer
            else:
                conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    return create_engine(url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)


def read_connection(engine: Engine) -> Connection:
    """``engine.connect()`` for a connection that only reads. SQLite: its transaction is a
    plain (deferred) ``BEGIN``, not ``BEGIN IMMEDIATE``, so it neither takes nor waits for
    the write lock (WAL readers see the last commit). PostgreSQL: the same as connect()."""
    return engine.connect().execution_options(**{READ_ONLY_OPTION: True})


_WRITE_LOCKS: weakref.WeakKeyDictionary[Engine, threading.Lock] = weakref.WeakKeyDictionary()
_WRITE_LOCKS_GUARD = threading.Lock()


def write_lock(engine: Engine) -> AbstractContextManager[Any]:
    """Hold around a write transaction. SQLite: one lock per engine, so this process's
    writers queue on it (first come, woken at once) instead of all opening
    ``BEGIN IMMEDIATE`` and sleeping in SQLite's busy handler, whose back-off steps of up
    to 100 ms made the tail latency. Other processes (the CLI) still meet the busy
    timeout. PostgreSQL: nothing; row locks order writers, across replicas too."""
    if engine.dialect.name != "sqlite":
        return contextlib.nullcontext()
    lock = _WRITE_LOCKS.get(engine)
    if lock is None:
        with _WRITE_LOCKS_GUARD:
            lock = _WRITE_LOCKS.setdefault(engine, threading.Lock())
    return lock


def is_postgresql(engine: Engine) -> bool:
    return engine.dialect.name == "postgresql"


def alembic_config(engine: Engine) -> Config:
    """An Alembic config pointing at the migrations inside the package (no alembic.ini)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    # Alembic's own "%" interpolation would mangle URL-encoded passwords.
    config.set_main_option(
        "sqlalchemy.url", engine.url.render_as_string(hide_password=False).replace("%", "%%")
    )
    return config


def head_revision() -> str:
    """The newest migration's revision id."""
    head = ScriptDirectory.from_config(_script_only_config()).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at; None: not migrated yet."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Migrate the database to ``revision``; a no-op when it is there already.

    Raises DatabaseUnavailable when the database cannot be reached.
    """
    config = alembic_config(engine)
    try:
        with engine.begin() as conn:
            if is_postgresql(engine):
                # Transaction-scoped: released at commit, even if this process dies.
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _MIGRATION_LOCK})
            config.attributes["connection"] = conn
            command.upgrade(config, revision)
    except OperationalError as exc:
        raise DatabaseUnavailable(f"database {engine.url!r} unreachable: {exc.orig}") from exc


def _script_only_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config
