"""[releases] store = "database": archives in the shared database, each replica's folder
only a cache; on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select, update

from cloud_sync.db.models import ReleaseBundle
from cloud_sync.releases.errors import BundleNotStored
from cloud_sync.releases.store import BundleStore
from edge_agent.model.shipped import DEFAULT_BUNDLE, default_public_key


def test_a_replica_that_never_saw_a_bundle_serves_it_from_the_database(
    tmp_path: Path, engine: Engine
) -> None:
    publisher = BundleStore(tmp_path / "replica-a", default_public_key(), engine)
    stored = publisher.put(DEFAULT_BUNDLE)
    publisher.put(DEFAULT_BUNDLE)  # idempotent in the database too
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(ReleaseBundle)).scalar_one() == 1

    reader = BundleStore(tmp_path / "replica-b", None, engine)
    path = reader.local_path(stored.sha256)
    assert path.parent.parent == tmp_path / "replica-b"
    assert path.read_bytes() == stored.path.read_bytes()
    assert reader.get(stored.sha256).manifest == stored.manifest
    # The cache is used from then on: the database row is not read again.
    with engine.begin() as conn:
        conn.execute(update(ReleaseBundle).values(archive=b"changed"))
    with reader.open(stored.sha256) as fh:
        assert fh.read() == stored.path.read_bytes()


def test_a_missing_or_corrupt_archive_is_not_stored(tmp_path: Path, engine: Engine) -> None:
    stored = BundleStore(tmp_path / "a", default_public_key(), engine).put(DEFAULT_BUNDLE)
    reader = BundleStore(tmp_path / "b", None, engine)
    with pytest.raises(BundleNotStored, match="no stored bundle"):
        reader.local_path("0" * 64)
    with engine.begin() as conn:
        conn.execute(update(ReleaseBundle).values(archive=b"not the archive"))
    with pytest.raises(BundleNotStored, match="does not match"):
        reader.local_path(stored.sha256)
    assert not (tmp_path / "b").exists()


def test_the_folder_store_stays_the_default(tmp_path: Path, engine: Engine) -> None:
    stored = BundleStore(tmp_path / "a", default_public_key()).put(DEFAULT_BUNDLE)
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(ReleaseBundle)).scalar_one() == 0
    with pytest.raises(BundleNotStored):
        BundleStore(tmp_path / "b", None, engine).local_path(stored.sha256)


def test_copy_to_database_lets_every_replica_serve_older_releases(
    tmp_path: Path, db_url: str, engine: Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    from cloud_sync.cli import main

    folder = tmp_path / "bundles"
    stored = BundleStore(folder, default_public_key()).put(DEFAULT_BUNDLE)
    bogus = folder / "ab" / f"{'ab' * 32}.tar"
    bogus.parent.mkdir()
    bogus.write_bytes(b"not that archive")
    config = tmp_path / "cloud.toml"
    config.write_text(f'[database]\nurl = "{db_url}"\n\n[releases]\ndir = "{folder}"\n')

    assert main(["releases", "copy-to-database", "--config", str(config)]) == 1
    out, err = capsys.readouterr()
    assert "copied 1 bundle(s)" in out and f"refused {'ab' * 32}" in err
    replica = BundleStore(tmp_path / "other-replica", None, engine)
    assert replica.local_path(stored.sha256).read_bytes() == stored.path.read_bytes()
