"""`edge-agent doctor`: each check on a real condition (a pty owned by another group, a
damaged SQLite file, a rejected bundle, a port nobody listens on), and the report."""

from __future__ import annotations

import grp
import http.server
import os
import pwd
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest

from edge_agent.config import LoadedConfig, parse_config
from edge_agent.doctor import clock, cloud, disk, model, serial, store
from edge_agent.doctor.base import DoctorContext, Finding, Status
from edge_agent.doctor.checks import CHECKS
from edge_agent.doctor.report import diagnose
from edgetwin_common.testing import free_port
from tests.conftest import REPO, BundleFactory
from tests.edge_agent.integration.helpers import run_cli

NOBODY = "nobody"


def _loaded(tmp_path: Path, body: str = "") -> LoadedConfig:
    text = f'[agent]\ndata_dir = "{tmp_path}"\n{body}'
    path = tmp_path / "agent.toml"
    path.write_text(text)
    return LoadedConfig(path, parse_config(text, str(path)))


def _context(tmp_path: Path, body: str = "", user: str = NOBODY) -> DoctorContext:
    loaded = _loaded(tmp_path, body)
    return DoctorContext(loaded.path, user, loaded)


@pytest.fixture
def pty_path() -> Iterator[Path]:
    master, slave = os.openpty()
    yield Path(os.ttyname(slave))
    os.close(master)
    os.close(slave)


def test_serial_port_permissions(tmp_path: Path, pty_path: Path) -> None:
    # A pty is root:tty 0620: nobody (not in tty) may not open it read/write.
    st = pty_path.stat()
    group = grp.getgrgid(st.st_gid).gr_name
    denied = serial.check_port("mcu", str(pty_path), NOBODY)
    assert denied.status is Status.FAIL
    assert denied.fix == f"sudo usermod -aG {group} {NOBODY} && sudo systemctl restart edge-agent"
    # Its owner may.
    owner = pwd.getpwuid(st.st_uid).pw_name
    assert serial.check_port("mcu", str(pty_path), owner).status is Status.OK
    # A device file in a group the user is in, with group rw: allowed.
    os.chown(pty_path, st.st_uid, pwd.getpwnam(NOBODY).pw_gid)
    os.chmod(pty_path, 0o660)
    try:
        assert serial.check_port("mcu", str(pty_path), NOBODY).status is Status.OK
    finally:
        os.chown(pty_path, st.st_uid, st.st_gid)
        os.chmod(pty_path, st.st_mode & 0o7777)

    missing = serial.check_port("mcu", str(tmp_path / "ttyUSB7"), NOBODY)
    assert missing.status is Status.FAIL and "/dev/serial/by-id" in (missing.fix or "")
    no_user = serial.check_port("mcu", str(pty_path), "no-such-user-here")
    assert no_user.status is Status.FAIL and "edge-agent install" in (no_user.fix or "")
    assert serial.check_port("mcu", "loop://", NOBODY).status is Status.SKIP


def test_model_rejected_and_shipped(tmp_path: Path, make_bundle: BundleFactory) -> None:
    assert model.check(_context(tmp_path))[0].status is Status.OK
    unsigned = make_bundle(sign=False)
    key = tmp_path / "release.pub"
    from edge_agent.model.shipped import DEFAULT_PUBLIC_KEY

    key.write_bytes(DEFAULT_PUBLIC_KEY.read_bytes())
    bad = model.check(_context(tmp_path, f'[model]\nbundle = "{unsigned}"\npublic_key = "{key}"\n'))
    assert bad[0].status is Status.FAIL and "rejected" in bad[0].message
    assert "model verify" in (bad[0].fix or "")


def test_store_missing_intact_and_damaged(tmp_path: Path) -> None:
    context = _context(tmp_path)
    assert store.check(context)[0].status is Status.OK  # created at the first start
    db = tmp_path / "edge-agent.db"
    with closing(sqlite3.connect(db)) as conn:
        conn.execute("CREATE TABLE t (x)")
        conn.commit()
    assert store.check(context)[0].status is Status.OK
    db.write_bytes(b"SQLite format 3\x00" + b"\xff" * 4096)
    damaged = store.check(context)[0]
    assert damaged.status is Status.FAIL and ".broken" in (damaged.fix or "")
    gone = _context(tmp_path, '[store]\npath = "/nonexistent-dir/edge-agent.db"\n')
    assert store.check(gone)[0].status is Status.WARN


def test_clock_judgement() -> None:
    now = 1_800_000_000.0
    assert clock.judge(0, now).status is Status.OK
    unsynced = clock.judge(clock.TIME_ERROR, now)
    assert unsynced.status is Status.WARN and "timedatectl" in (unsynced.fix or "")
    assert clock.judge(0, 86_400.0).status is Status.FAIL  # a board that booted in 1970
    state = clock.kernel_clock_state()  # the real syscall answers with a clock state
    assert state is None or 0 <= state <= 5


def test_disk_thresholds(tmp_path: Path) -> None:
    assert disk.judge(10 << 30, 256 << 20, tmp_path).status is Status.OK
    assert disk.judge(100 << 20, 256 << 20, tmp_path).status is Status.WARN
    low = disk.judge(10 << 20, 256 << 20, tmp_path)
    assert low.status is Status.FAIL and "max_bytes" in (low.fix or "")
    assert disk.check(_context(tmp_path))[0].status in (Status.OK, Status.WARN, Status.FAIL)


class _Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/health" else 404)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_cloud_reachable_and_not(tmp_path: Path) -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        port = server.server_address[1]
        sync = (
            f'[sync]\nenabled = true\nurl = "http://127.0.0.1:{port}"\ntoken = "t0ken-for-tests"\n'
        )
        assert cloud.check(_context(tmp_path, sync))[0].status is Status.OK
    finally:
        server.shutdown()
        server.server_close()
    closed = free_port()
    sync = f'[sync]\nenabled = true\nurl = "http://127.0.0.1:{closed}"\ntoken = "t0ken-for-tests"\n'
    down = cloud.check(_context(tmp_path, sync))[0]
    assert down.status is Status.FAIL and "[sync] url" in (down.fix or "")
    assert cloud.check(_context(tmp_path))[0].status is Status.SKIP


def test_report_and_exit_code(tmp_path: Path, pty_path: Path) -> None:
    body = f"""
[[sources]]
type = "serial"
name = "mcu"
port = "{pty_path}"
format = "csv"
csv_fields = ["temp"]
[sources.fields.temp]
channel = "temp"
"""
    loaded = _loaded(tmp_path, body)
    checks = [f.check for f in diagnose(loaded.path, NOBODY)]
    assert checks == ["config", "serial", "model", "store", "clock", "disk", "cloud", "actions"]
    done = run_cli(["doctor", "--config", str(loaded.path), "--user", NOBODY], tmp_path)
    assert done.returncode == 1  # nobody may not use the pty
    assert "FAIL  serial" in done.stdout and "fix: sudo usermod -aG" in done.stdout
    assert "OK    model" in done.stdout

    broken = tmp_path / "broken.toml"
    broken.write_text("[agent]\nnmae = 1\n")
    bad = run_cli(["doctor", "--config", str(broken)], tmp_path)
    assert bad.returncode == 1 and "FAIL  config" in bad.stdout and "check-config" in bad.stdout
    assert [f.check for f in diagnose(broken, NOBODY)] == ["config", "clock"]


def test_every_check_has_the_one_signature_and_reports_under_its_name(
    tmp_path: Path, pty_path: Path
) -> None:
    body = f"""
[[sources]]
type = "serial"
name = "mcu"
port = "{pty_path}"
format = "kv"
[sources.fields.temp]
channel = "temp"
"""
    context = _context(tmp_path, body)
    names = [check.name for check in CHECKS]
    assert len(names) == len(set(names))
    operations = (REPO / "docs" / "operations.md").read_text(encoding="utf-8")
    for check in CHECKS:
        findings = check.run(context)
        assert findings and all(isinstance(f, Finding) for f in findings)
        assert {f.check for f in findings} == {check.name}
        assert f"{check.name} (" in operations  # described in docs/operations.md
    # A check that needs no config runs without one.
    without = DoctorContext(tmp_path / "absent.toml", NOBODY, None)
    for check in CHECKS:
        if not check.needs_config:
            assert check.run(without)
        else:
            with pytest.raises(RuntimeError, match="needs the config"):
                check.run(without)
