"""`cloud-sync serve` as systemd runs it (Type=notify): READY once migrated and
listening, watchdog pings while its loop runs, STOPPING on SIGTERM and exit 0."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import httpx

from edgetwin_common.testing import free_port
from tests.edge_agent.daemon.fake_systemd import FakeSystemd


def test_cloud_sync_serve_notifies(tmp_path: Path) -> None:
    systemd = FakeSystemd(tmp_path / "notify.sock")
    port = free_port()
    env = {**os.environ, "NOTIFY_SOCKET": str(systemd.path), "WATCHDOG_USEC": "200000"}
    log = (tmp_path / "serve.log").open("wb")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "cloud_sync",
            "serve",
            "--database-url",
            f"sqlite:///{tmp_path / 'cloud.db'}",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        with closing(systemd.sock):
            ready = systemd.wait_for("READY")[-1]
            assert f":{port}" in ready["STATUS"]
            # READY means listening: the API answers now.
            assert httpx.get(f"http://127.0.0.1:{port}/health", timeout=5).status_code == 200
            for _ in range(3):
                assert systemd.wait_for("WATCHDOG")[-1]["WATCHDOG"] == "1"
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(60) == 0
            assert "STOPPING" in {k for m in systemd.drain() for k in m}
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
        log.close()
