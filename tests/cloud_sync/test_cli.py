"""The `cloud-sync` command: devices add, check-config, and serve as a real process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from cloud_sync.cli import main
from cloud_sync.config import CloudConfig, DatabaseSection
from cloud_sync.db.session import make_engine
from cloud_sync.http.app import create_app
from edgetwin_common.testing import free_port
from tests.cloud_sync.conftest import batch, bearer, post_batch

EXAMPLE = Path(__file__).resolve().parents[2] / "cloud_sync" / "examples" / "cloud.toml"


def test_devices_add_prints_a_token_that_works(
    db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["devices", "add", "field-pump", "--database-url", db_url]) == 0
    captured = capsys.readouterr()
    token = captured.out.strip()
    assert len(token) >= 40 and "\n" not in token
    assert "not shown again" in captured.err

    engine = make_engine(db_url)
    try:
        app = create_app(CloudConfig(database=DatabaseSection(url=db_url)), engine)
        with TestClient(app) as client:
            assert post_batch(client, token, batch(1)).status_code == 200
            assert client.get("/v1/twin", headers=bearer(token)).json()["device"] == "field-pump"
    finally:
        engine.dispose()

    assert main(["devices", "add", "field-pump", "--database-url", db_url]) == 1
    assert "exists" in capsys.readouterr().err
    assert main(["devices", "add", "bad name", "--database-url", db_url]) == 2
    assert main(["devices", "rotate-token", "ghost", "--database-url", db_url]) == 1
    assert main(["devices", "add", "new-pump", "--database-url", db_url]) == 0
    capsys.readouterr()
    assert main(["devices", "list", "--database-url", db_url]) == 0
    listed = capsys.readouterr().out
    assert "field-pump" in listed
    assert "new-pump\tunknown\tseq 0\tnothing reported yet\tdesired v" in listed
    assert "vNone" not in listed


def test_init_config_writes_the_commented_example(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "cloud.toml"
    assert main(["init-config", str(path)]) == 0
    assert path.read_text() == EXAMPLE.read_text()
    assert main(["check-config", str(path)]) == 0
    assert main(["init-config", str(path)]) == 2
    assert "--force" in capsys.readouterr().err


def test_check_config_on_the_example(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", str(EXAMPLE)]) == 0
    assert "OK" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[server]\nprot = 1\n", "server.prot: Extra inputs are not permitted"),
        ("[database]\nurl = 'mysql://x/y'\n", "database.url: unsupported database 'mysql'"),
        ("[auth]\nadmin_token = 'short'\n", "auth.admin_token: must be at least 16"),
        ("[auth]\nadmin_token_sha256 = 'abc'\n", "auth.admin_token_sha256: must be 64 hex"),
        ("[fleet]\nstale_after_s = -1\n", "fleet.stale_after_s"),
        ("[server\n", "<toml>"),
    ],
)
def test_check_config_reports_key_paths(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, expected: str
) -> None:
    path = tmp_path / "cloud.toml"
    path.write_text(text)
    assert main(["check-config", str(path)]) == 2
    err = capsys.readouterr().err
    assert expected in err
    assert "short" not in err  # secrets are never echoed


def test_serve_runs_as_a_process(tmp_path: Path) -> None:
    """`cloud-sync serve`: migrates an empty SQLite file at start and answers on its port."""
    port = free_port()
    database = tmp_path / "served.db"
    config = tmp_path / "cloud.toml"
    config.write_text(f'[server]\nport = {port}\n[auth]\nadmin_token = "{"a" * 32}"\n')
    env = {**os.environ, "CLOUD_SYNC_DATABASE_URL": f"sqlite:///{database}"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "cloud_sync", "serve", "--config", str(config)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            try:
                ready = httpx.get(f"http://127.0.0.1:{port}/ready", timeout=1)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "serve did not answer within 20 s"
                time.sleep(0.1)
        assert ready.status_code == 200 and ready.json()["status"] == "ready"
        devices = httpx.get(f"http://127.0.0.1:{port}/v1/devices", headers=bearer("a" * 32))
        assert devices.status_code == 200 and devices.json() == []
        assert database.exists()
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
