"""Alembic migrations: a fresh database reaches head, the models match, upgrade is idempotent."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

from cloud_sync.cli import main
from cloud_sync.db.models import Base
from cloud_sync.db.session import (
    alembic_config,
    current_revision,
    head_revision,
    make_engine,
    upgrade,
)
from cloud_sync.releases.model import ReleaseKind
from cloud_sync.releases.records import list_releases
from tests.cloud_sync.conftest import fresh_pg_database


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database nobody has touched (a new PostgreSQL database, not the session one)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'fresh.db'}"
        return
    with fresh_pg_database() as url:
        yield url


def test_fresh_database_upgrades_to_head_and_matches_the_models(empty_db_url: str) -> None:
    engine = make_engine(empty_db_url)
    try:
        assert current_revision(engine) is None
        upgrade(engine)
        assert current_revision(engine) == head_revision()
        tables = set(inspect(engine).get_table_names())
        assert {"devices", "batches", "summaries", "alarm_events", "alarms"} <= tables
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        assert diff == [], f"models and migrations differ: write a migration for {diff}"

        # Down to nothing and back up again: every migration has a working downgrade.
        with engine.begin() as conn:
            config = alembic_config(engine)
            config.attributes["connection"] = conn
            command.downgrade(config, "base")
        assert "devices" not in inspect(engine).get_table_names()
        upgrade(engine)
        assert current_revision(engine) == head_revision()
    finally:
        engine.dispose()


def test_cli_db_upgrade_is_idempotent(
    empty_db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["db", "upgrade", "--database-url", empty_db_url]) == 0
    assert main(["db", "upgrade", "--database-url", empty_db_url]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2 and out[0] == out[1]
    assert f"at revision {head_revision()}" in out[1]
    assert main(["db", "current", "--database-url", empty_db_url]) == 0
    assert capsys.readouterr().out.strip() == head_revision()


def test_unreachable_database_is_exit_3(capsys: pytest.CaptureFixture[str]) -> None:
    # Port 9 (discard) on loopback: refused at once, nothing listens there.
    url = "postgresql://nobody@127.0.0.1:9/none?connect_timeout=2"
    assert main(["db", "upgrade", "--database-url", url]) == 3
    assert "database unavailable" in capsys.readouterr().err


def test_releases_from_before_0005_are_models(empty_db_url: str) -> None:
    """Migration 0005 adds releases.kind: every release stored before it was a model."""
    engine = make_engine(empty_db_url)
    try:
        upgrade(engine, "0004")
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO releases (model_name, version, bundle_sha256, size_bytes, "
                    "created_at, stages, stage, state, updated_at) VALUES ('generic', '1.1.0', "
                    ":sha, 10240, 1.0, '[{\"percent\": 100}]', 0, 'complete', 1.0)"
                ),
                {"sha": "ab" * 32},
            )
        upgrade(engine)
        with engine.connect() as conn:
            kinds = conn.execute(text("SELECT version, kind FROM releases")).all()
        assert [tuple(k) for k in kinds] == [("1.1.0", "model")]
        assert list_releases(engine)[0].kind == ReleaseKind.MODEL
    finally:
        engine.dispose()
