"""Release bundle archives in the database ([releases] store = "database").

Every replica reads the same rows, so a bundle published through one replica downloads
through any other; each keeps a copy in its own folder (by sha256, so a copy never goes
stale) and serves HTTP Range requests from there.
"""

from __future__ import annotations

import time

from sqlalchemy import Engine, select
from sqlalchemy.dialects import postgresql, sqlite

from cloud_sync.db.models import ReleaseBundle
from cloud_sync.db.session import read_connection, write_lock


def save_archive(engine: Engine, sha256: str, data: bytes, now: float | None = None) -> None:
    """Store the archive ``data`` under its ``sha256``; storing it again is a no-op (on
    every replica at once too: the primary key decides)."""
    dialect_insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert
    statement = (
        dialect_insert(ReleaseBundle)
        .values(
            sha256=sha256,
            size_bytes=len(data),
            archive=data,
            created_at=time.time() if now is None else now,
        )
        .on_conflict_do_nothing(index_elements=["sha256"])
    )
    with write_lock(engine), engine.begin() as conn:
        conn.execute(statement)


def load_archive(engine: Engine, sha256: str) -> bytes | None:
    """The archive stored under ``sha256``; None when there is none."""
    with read_connection(engine) as conn:
        data = conn.execute(
            select(ReleaseBundle.archive).where(ReleaseBundle.sha256 == sha256)
        ).scalar()
    return None if data is None else bytes(data)
