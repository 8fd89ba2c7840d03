"""0001 -> 0002 on a database holding data; the releases CLI end to end."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import inspect, select

from cloud_sync.cli import main
from cloud_sync.db.models import Device
from cloud_sync.db.session import current_revision, head_revision, make_engine, upgrade
from cloud_sync.registry import add_device
from edge_agent.model.shipped import DEFAULT_BUNDLE, DEFAULT_PUBLIC_KEY
from tests.cloud_sync.conftest import fresh_pg_database


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'fresh.db'}"
        return
    with fresh_pg_database() as url:
        yield url


def test_upgrade_from_0001_keeps_the_data(empty_db_url: str) -> None:
    engine = make_engine(empty_db_url)
    try:
        upgrade(engine, "0001")
        add_device(engine, "pump-1")
        upgrade(engine)
        assert current_revision(engine) == head_revision()
        tables = set(inspect(engine).get_table_names())
        assert {"releases", "release_assignments", "device_group_members"} <= tables
        with engine.connect() as conn:
            assert conn.execute(select(Device.name)).scalars().all() == ["pump-1"]
    finally:
        engine.dispose()


def test_cli_publish_list_evaluate_stop(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "cloud.toml"
    config.write_text(
        f'[database]\nurl = "sqlite:///{tmp_path / "c.db"}"\n'
        f'[releases]\npublic_key = "{DEFAULT_PUBLIC_KEY}"\n'
    )
    db = ["--config", str(config)]
    assert main(["devices", "add", "pump-1", *db]) == 0
    assert main(["devices", "group", "add", "canary", "pump-1", *db]) == 0
    assert main(["devices", "group", "add", "canary", "ghost", *db]) == 1
    capsys.readouterr()
    assert (
        main(
            [
                "releases",
                "publish",
                str(DEFAULT_BUNDLE),
                "--version",
                "1.0.0",
                "--canary-group",
                "canary",
                *db,
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert out.startswith("release 1: edgetwin-generic-forecaster 1.0.0")
    assert (tmp_path / "bundles").is_dir()
    assert main(["releases", "list", *db]) == 0
    assert "\tcanary\t" in capsys.readouterr().out
    assert main(["releases", "evaluate", *db]) == 0
    assert main(["releases", "stop", "1", *db]) == 0
    assert "stopped" in capsys.readouterr().out
    assert main(["releases", "stop", "7", *db]) == 1
    key_dir = tmp_path / "keys"
    assert main(["releases", "keygen", str(key_dir)]) == 0
    assert (key_dir / "release.key").stat().st_mode & 0o777 == 0o600
    assert main(["releases", "keygen", str(key_dir)]) == 1


def test_cli_publishes_the_shipped_twin_as_a_twin_release(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from edge_agent.twin.shipped import DEFAULT_TWIN_BUNDLE, DEFAULT_TWIN_PUBLIC_KEY

    config = tmp_path / "cloud.toml"
    config.write_text(
        f'[database]\nurl = "sqlite:///{tmp_path / "c.db"}"\n'
        f'[releases]\npublic_key = "{DEFAULT_TWIN_PUBLIC_KEY}"\n'
    )
    db = ["--config", str(config)]
    assert main(["devices", "add", "pump-1", *db]) == 0
    capsys.readouterr()  # the device's token
    publish = ["releases", "publish", str(DEFAULT_TWIN_BUNDLE), "--version", "1.0.0"]
    assert main([*publish, "--device", "pump-1", *db]) == 0
    out = capsys.readouterr().out
    assert out.startswith("release 1: edgetwin-pump-twin 1.0.0") and out.strip().endswith("(twin)")
    assert main(["releases", "list", *db]) == 0
    assert capsys.readouterr().out.startswith("1\ttwin\tedgetwin-pump-twin\t1.0.0\t")
    assert main(["releases", "show", "1", *db]) == 0
    assert '"kind": "twin"' in capsys.readouterr().out
    assert main(["releases", "rollback", "pump-1", "1.0.0", "--kind", "model", *db]) == 1
    assert "no release '1.0.0'" in capsys.readouterr().err
    assert main(["releases", "rollback", "pump-1", "1.0.0", "--kind", "twin", *db]) == 0
    assert capsys.readouterr().out.strip() == "pump-1: desired twin 1.0.0 (rollback)"
