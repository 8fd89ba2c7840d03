"""The store's one SQLite connection, its lock, and the one way to write a transaction.

Every room of the store works through one ``Database``: one connection
(``check_same_thread=False``) behind one lock, so the asyncio agent (loop thread), a
flush running in a worker thread (``asyncio.to_thread``) and HTTP queries from a
threadpool can share a Store. ``transaction`` is the only place that issues BEGIN,
COMMIT and ROLLBACK.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

from edge_agent.store.errors import StoreUnavailable

WAL_SIZE_LIMIT = 4 << 20
"""Bytes the WAL file is truncated to after a checkpoint (``journal_size_limit``)."""


@contextlib.contextmanager
def transaction(conn: sqlite3.Connection, *, durable: bool = False) -> Iterator[None]:
    """``BEGIN IMMEDIATE`` on entry, ``COMMIT`` on a normal exit; on any exception
    ``ROLLBACK`` (a failing rollback is ignored: the original error is the one worth
    seeing) and re-raise. ``conn`` must be in autocommit mode (``isolation_level=None``).

    durable: commit this one transaction with ``synchronous=FULL`` (an fsync, so it
    survives a power cut), then return to ``NORMAL``. Raises what the statements raise
    (``sqlite3.Error``, or whatever the body raises)."""
    if durable:
        conn.execute("PRAGMA synchronous = FULL")
    try:
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            raise
    finally:
        if durable:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("PRAGMA synchronous = NORMAL")


class Database:
    """The connection to the store's file and the lock that serialises its use.

    path: the SQLite file (parent directories are created). Raises StoreUnavailable if
    the file cannot be opened. ``configure`` must run before the schema is migrated.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock = threading.Lock()
        """Held for every statement: one connection is not safe to share otherwise."""
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            # isolation_level=None: transaction() issues BEGIN/COMMIT itself.
            self.conn = sqlite3.connect(
                path, isolation_level=None, check_same_thread=False, timeout=5.0
            )
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"{path}: cannot open: {exc}") from exc

    def configure(self) -> None:
        """Set the file's journal and sync mode. Raises sqlite3.Error (OperationalError if
        WAL is refused, DatabaseError if the file is not a database)."""
        conn = self.conn
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
        # sized rewrite per second, wearing the card for no gain in consistency. The
        # commits that must survive a power cut (alarm events, a staged sync batch) ask
        # for FULL for themselves: transaction(durable=True).
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute(f"PRAGMA journal_size_limit = {WAL_SIZE_LIMIT:d}")

    @contextlib.contextmanager
    def locked(self) -> Iterator[sqlite3.Connection]:
        """The connection, under the lock; a sqlite3.Error inside becomes
        StoreUnavailable (retry later)."""
        with self.lock:
            try:
                yield self.conn
            except sqlite3.Error as exc:
                raise StoreUnavailable(f"{self.path}: {exc}") from exc

    def file_bytes(self) -> int:
        """Main file + WAL, bytes (a missing WAL counts 0)."""
        total = 0
        for suffix in ("", "-wal"):
            with contextlib.suppress(FileNotFoundError):
                total += os.stat(f"{self.path}{suffix}").st_size
        return total

    def close(self) -> None:
        """Close the connection once every statement in progress is done."""
        with self.lock:
            self.conn.close()


def check_limit(limit: int) -> None:
    """Raise ValueError unless ``limit`` (a query's row count) is >= 1."""
    if limit < 1:
        raise ValueError(f"limit must be >= 1: {limit}")
