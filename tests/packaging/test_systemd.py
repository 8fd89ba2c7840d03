"""The units under a real systemd: a cached Debian root booted with systemd as PID 1 in
systemd-nspawn (tests/packaging/nspawn.py), the agent installed there by `edge-agent
install` from a wheelhouse made on the host, the cloud the way docs/deployment.md says.

Checked for the agent: READY only once HTTP answers; the hardening directives in force
while LiteRT runs the shipped model; a serial device (one end of a socat pty pair, bound
into the container as /dev/ttyUSB0) refused by DevicePolicy=closed until a DeviceAllow=
names it; the watchdog restarting an agent whose source stalls; a clean stop; a restart
that keeps the store. For the cloud: READY, hardening, the watchdog restarting a
stopped (SIGSTOP) process, a clean stop, a restart that keeps the database.

One container for the module (boot < 1 s once the root is cached; the first build takes
about a minute or more and prints its progress). Timeouts are guards, never assertions.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edgetwin_common.testing import wait_until
from tests.conftest import REPO, require
from tests.packaging.nspawn import (
    Container,
    booted,
    cached_root,
    missing_prerequisites,
    requirements,
    wheelhouse,
)

pytestmark = pytest.mark.slow

GUARD_S = 90.0
AGENT = "edge-agent.service"
CLOUD = "cloud-sync.service"
ADMIN_TOKEN = "systemd-test-admin-token-0123456789"
CLOUD_PORT = 8300
AGENT_PORT = 8080
HARDENING = {
    "NoNewPrivileges": "yes",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "RestrictRealtime": "yes",
    "LockPersonality": "yes",
}


class PumpLine:
    """The host end of a socat pty pair: writes CSV lines (4 sensors) at 20 Hz while
    ``flowing`` is set. The other end is what the container sees as /dev/ttyUSB0."""

    def __init__(self, folder: Path) -> None:
        require(shutil.which("socat") is not None, "socat (Debian: socat)")
        self.host_link, self.device_link = folder / "pty-host", folder / "pty-device"
        self.socat = subprocess.Popen(
            [
                "socat",
                f"pty,raw,echo=0,link={self.host_link}",
                f"pty,raw,echo=0,link={self.device_link}",
            ],
            stderr=subprocess.DEVNULL,
        )
        wait_until(lambda: self.device_link.exists() and self.host_link.exists(), "socat ptys")
        self.device = os.path.realpath(self.device_link)
        # What a USB serial adapter is on Debian: root:dialout 0660.
        os.chown(self.device, 0, 20)
        os.chmod(self.device, 0o660)
        self.flowing = threading.Event()
        self.flowing.set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._write, daemon=True)
        self._thread.start()

    def _write(self) -> None:
        fd = os.open(self.host_link, os.O_WRONLY | os.O_NOCTTY | os.O_NONBLOCK)
        i = 0
        try:
            while not self._stop.wait(0.05):
                if not self.flowing.is_set():
                    continue
                i += 1
                line = f"{55 + (i % 40) / 10:.2f},{1.8 + (i % 7) / 100:.3f},17.{i % 9},22.0\n"
                # Nobody reads while the agent is stopped: the pty buffer fills up.
                with contextlib.suppress(BlockingIOError):
                    os.write(fd, line.encode())
        finally:
            os.close(fd)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.socat.terminate()
        self.socat.wait(10)


@pytest.fixture(scope="module")
def pump(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PumpLine]:
    why = missing_prerequisites()
    require(not why, "; ".join(why))
    line = PumpLine(tmp_path_factory.mktemp("pty"))
    yield line
    line.close()


@pytest.fixture(scope="module")
def box(
    tmp_path_factory: pytest.TempPathFactory,
    pump: PumpLine,
    wheel: Path,
    pytestconfig: pytest.Config,
) -> Iterator[Container]:
    """The booted container with the wheelhouse and the project wheel at /wheels."""
    capture = pytestconfig.pluginmanager.getplugin("capturemanager")
    # The first build takes a minute or more: its progress shows live, not captured.
    with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
        root = cached_root()
        house = wheelhouse(REPO)
    work = tmp_path_factory.mktemp("nspawn")
    wheels = work / "wheels"
    shutil.copytree(house, wheels)
    shutil.copy(wheel, wheels)
    binds = [(str(wheels), "/wheels"), (pump.device, "/dev/ttyUSB0")]
    started = time.monotonic()
    with booted(root, work / "box", binds=binds) as container:
        print(f"container booted in {time.monotonic() - started:.2f} s")
        yield container


def http_get(box: Container, port: int, path: str, token: str | None = None) -> Any:
    """GET http://127.0.0.1:PORT/PATH inside the container (its own network namespace):
    the decoded JSON, or None while nothing answers (or not 200)."""
    script = (
        "import sys, urllib.request\n"
        "req = urllib.request.Request(sys.argv[1])\n"
        "if len(sys.argv) > 2: req.add_header('Authorization', 'Bearer ' + sys.argv[2])\n"
        "try:\n"
        "    print(urllib.request.urlopen(req, timeout=5).read().decode())\n"
        "except Exception as exc:\n"
        "    print('null'); print(exc, file=sys.stderr)\n"
    )
    argv = ["python3", "-c", script, f"http://127.0.0.1:{port}{path}"]
    out = box.run(argv + ([token] if token else []), check=False).stdout.strip()
    return json.loads(out or "null")


def main_pid(box: Container, unit: str) -> int:
    return int(box.show(unit, "MainPID")["MainPID"])


def proc_status(box: Container, pid: int) -> dict[str, str]:
    text = box.run(["cat", f"/proc/{pid}/status"]).stdout
    return {k: v.strip() for k, _, v in (line.partition(":") for line in text.splitlines())}


def drop_in(box: Container, unit: str, text: str) -> None:
    folder = box.path(f"/etc/systemd/system/{unit}.d")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "test.conf").write_text(text)
    box.systemctl("daemon-reload")


def assert_hardened(box: Container, unit: str) -> int:
    """The directives as systemd holds them and as the kernel enforces them on the main
    process (seccomp filter, no_new_privs, read-only /usr); returns the main PID."""
    shown = box.show(unit, *HARDENING, "SystemCallFilter", "MemoryDenyWriteExecute")
    for key, value in HARDENING.items():
        assert shown[key] == value, (key, shown[key])
    assert shown["SystemCallFilter"], "no system call filter"
    pid = main_pid(box, unit)
    status = proc_status(box, pid)
    assert status["Seccomp"] == "2", status["Seccomp"]  # filter mode
    assert status["NoNewPrivs"] == "1"
    assert status["CapEff"] == "0000000000000000"
    mounts = box.run(["cat", f"/proc/{pid}/mountinfo"]).stdout.splitlines()
    usr = [m.split() for m in mounts if m.split()[4] in ("/", "/usr")]
    assert usr and all("ro" in m[5].split(",") for m in usr), usr
    return pid


def agent_status(box: Container) -> dict[str, Any] | None:
    found: dict[str, Any] | None = http_get(box, AGENT_PORT, "/status")
    return found


def agent_readings(box: Container) -> int:
    status = agent_status(box)
    return 0 if status is None else sum(ch["readings"] for ch in status["channels"])


# -- the agent -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def agent(box: Container, wheel: Path) -> Container:
    """`edge-agent install` inside the container, run from the wheel itself (docs/
    operations.md), its dependencies from the wheelhouse; the unit enabled and started."""
    name = f"/wheels/{wheel.name}"
    done = box.run(
        [
            "python3",
            "-m",
            "edge_agent.install",
            "install",
            "--package",
            name,
            "--pip-option=--no-index",
            "--pip-option=--find-links=/wheels",
            "--name",
            "nspawn-pump",
            "--serial-port",
            "/dev/ttyUSB0",
        ],
        env={"PYTHONPATH": name},
        timeout=600,
    )
    print(done.stdout)
    return box


def test_agent_ready_only_once_http_answers(agent: Container) -> None:
    # `systemctl restart` of a Type=notify unit returns once READY=1 arrived: HTTP must
    # answer at that moment, without waiting.
    agent.systemctl("restart", AGENT)
    shown = agent.show(AGENT, "ActiveState", "SubState", "Type", "StatusText")
    assert (shown["ActiveState"], shown["SubState"], shown["Type"]) == (
        "active",
        "running",
        "notify",
    ), agent.journal(AGENT)
    ready = http_get(agent, AGENT_PORT, "/ready")
    assert ready is not None, agent.journal(AGENT)


def test_serial_device_through_the_device_policy(agent: Container) -> None:
    # The pty bound as /dev/ttyUSB0 is major 136 ("pts"), which DevicePolicy=closed
    # always allows (terminals); readings flow through it under the whole sandbox.
    wait_until(lambda: agent_readings(agent) > 20, "readings through the pty", timeout_s=GUARD_S)
    source = (agent_status(agent) or {})["sources"][0]
    assert source["state"] == "connected" and source["counters"]["lines_ok"] > 5
    shown = agent.show(AGENT, "DevicePolicy")
    assert shown["DevicePolicy"] == "closed"
    # The policy is enforced (BPF device program on the unit's cgroup): a process in
    # the agent's cgroup may open a ttyS node (DeviceAllow=char-ttyS) but not a device
    # the unit does not name (10:200, /dev/net/tun).
    agent.run(["mknod", "-m", "0600", "/dev/test-ttyS", "c", "4", "64"], check=False)
    agent.run(["mknod", "-m", "0600", "/dev/test-misc", "c", "10", "200"], check=False)
    assert _open_in_unit(agent, AGENT, "/dev/test-misc") == "EPERM"
    assert _open_in_unit(agent, AGENT, "/dev/test-ttyS") != "EPERM"


def _open_in_unit(box: Container, unit: str, node: str) -> str:
    """Open ``node`` from a process moved into ``unit``'s cgroup: "ok" or the errno name."""
    script = (
        "import errno, os, sys\n"
        "open(sys.argv[1], 'w').write(str(os.getpid()))\n"
        "try:\n"
        "    os.close(os.open(sys.argv[2], os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK))\n"
        "    print('ok')\n"
        "except OSError as exc:\n"
        "    print(errno.errorcode[exc.errno])\n"
    )
    procs = f"/sys/fs/cgroup/system.slice/{unit}/cgroup.procs"
    return box.run(["python3", "-c", script, procs, node]).stdout.strip()


def _source_error(box: Container) -> str | None:
    status = agent_status(box)
    if status is None:
        return None
    error: str | None = status["sources"][0]["last_error"]
    return error


def test_hardening_in_force_with_litert_running(agent: Container) -> None:
    wait_until(lambda: agent_readings(agent) > 0, "readings", timeout_s=GUARD_S)
    pid = assert_hardened(agent, AGENT)
    assert agent.show(AGENT, "MemoryDenyWriteExecute")["MemoryDenyWriteExecute"] == "yes"
    maps = agent.run(["cat", f"/proc/{pid}/maps"]).stdout
    assert "litert" in maps.lower() or "tensorflow" in maps.lower(), "LiteRT not loaded"
    # No mapping both writable and executable (what MemoryDenyWriteExecute forbids).
    assert not [m for m in maps.splitlines() if m.split()[1].startswith("rwx")]

    def forecasting() -> bool:
        status = agent_status(agent)
        return status is not None and all(ch["forecast"] for ch in status["channels"])

    wait_until(forecasting, "a forecast on every channel (LiteRT inference)", timeout_s=GUARD_S)
    status = agent_status(agent)
    assert status is not None and "litert" in status["model"]["backend"].lower()


def test_watchdog_restarts_an_agent_whose_source_stalls(agent: Container, pump: PumpLine) -> None:
    # Short times for the test: stall after 2 s, watchdog 4 s (the unit ships 30 s each).
    config = agent.path("/etc/edge-agent/agent.toml")
    text = config.read_text()
    config.write_text(text.replace("stall_after_s = 30.0", "stall_after_s = 2.0"))
    drop_in(agent, AGENT, "[Service]\nWatchdogSec=4s\nRestartSec=1s\n")
    agent.systemctl("restart", AGENT)
    wait_until(lambda: agent_readings(agent) > 0, "readings", timeout_s=GUARD_S)
    before = int(agent.show(AGENT, "NRestarts")["NRestarts"])
    pid = main_pid(agent, AGENT)
    pump.flowing.clear()
    try:
        wait_until(
            lambda: int(agent.show(AGENT, "NRestarts")["NRestarts"]) > before,
            "a restart by the watchdog",
            timeout_s=GUARD_S,
        )
    finally:
        pump.flowing.set()
    journal = agent.journal(AGENT, 200)
    assert "Watchdog timeout" in journal, journal
    assert "pipeline stalled" in journal
    wait_until(lambda: agent.show(AGENT, "SubState")["SubState"] == "running", "running again")
    assert main_pid(agent, AGENT) != pid
    wait_until(lambda: agent_readings(agent) > 0, "readings after the restart", timeout_s=GUARD_S)


def test_clean_stop_and_a_restart_that_keeps_the_store(agent: Container) -> None:
    wait_until(lambda: agent_readings(agent) > 30, "readings", timeout_s=GUARD_S)
    agent.systemctl("stop", AGENT)
    shown = agent.show(AGENT, "ActiveState", "Result", "ExecMainStatus", "ExecMainCode")
    assert shown["ActiveState"] == "inactive"
    assert shown["Result"] == "success", (shown, agent.journal(AGENT))
    assert "Traceback" not in agent.journal(AGENT, 100)
    stored = _stored_readings(agent)
    assert stored > 30
    agent.systemctl("start", AGENT)
    status = agent_status(agent)
    assert status is not None
    assert status["store"]["details"]["reading_rows"] >= stored


def _stored_readings(box: Container) -> int:
    """The readings in the agent's store, read with the system sqlite3 module."""
    out = box.run(
        [
            "python3",
            "-c",
            "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]);"
            " print(c.execute('select coalesce(sum(n), 0) from reading_blocks').fetchone()[0])",
            "/var/lib/edge-agent/edge-agent.db",
        ]
    ).stdout
    return int(out)


# -- the cloud -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cloud(box: Container, wheel: Path) -> Container:
    """The cloud as docs/deployment.md installs it (without TensorFlow: no retraining
    here), its unit from packaging/systemd, enabled and started."""
    box.run(
        [
            "useradd",
            "--system",
            "--home",
            "/var/lib/cloud-sync",
            "--shell",
            "/usr/sbin/nologin",
            "cloud-sync",
        ]
    )
    box.run(["python3", "-m", "venv", "/opt/edgetwin"])
    reqs = requirements(REPO)
    box.run(
        [
            "/opt/edgetwin/bin/pip",
            "install",
            "--quiet",
            "--no-index",
            "--find-links=/wheels",
            f"/wheels/{wheel.name}",
            *reqs,
        ],
        timeout=600,
    )
    etc = box.path("/etc/cloud-sync")
    etc.mkdir(parents=True, exist_ok=True)
    (etc / "cloud.toml").write_text(
        f'[server]\nport = {CLOUD_PORT}\n\n[auth]\nadmin_token = "{ADMIN_TOKEN}"\n\n'
        '[database]\nurl = "sqlite:////var/lib/cloud-sync/cloud-sync.db"\n'
    )
    box.run(["chown", "root:cloud-sync", "/etc/cloud-sync/cloud.toml"])
    box.run(["chmod", "0640", "/etc/cloud-sync/cloud.toml"])
    shutil.copy(REPO / "packaging/systemd" / CLOUD, box.path(f"/etc/systemd/system/{CLOUD}"))
    box.systemctl("daemon-reload")
    box.systemctl("enable", "--now", CLOUD)
    return box


def _devices(box: Container) -> list[str] | None:
    found = http_get(box, CLOUD_PORT, "/v1/devices", ADMIN_TOKEN)
    return None if found is None else [d["name"] for d in found]


def test_cloud_ready_and_hardened(cloud: Container) -> None:
    shown = cloud.show(CLOUD, "ActiveState", "SubState")
    assert (shown["ActiveState"], shown["SubState"]) == ("active", "running"), cloud.journal(CLOUD)
    # READY=1 comes after migrating and binding: the port answers at once.
    assert http_get(cloud, CLOUD_PORT, "/ready") is not None, cloud.journal(CLOUD)
    assert_hardened(cloud, CLOUD)


def test_cloud_watchdog_restarts_a_stopped_process(cloud: Container) -> None:
    drop_in(cloud, CLOUD, "[Service]\nWatchdogSec=3s\nRestartSec=1s\n")
    cloud.systemctl("restart", CLOUD)
    before = int(cloud.show(CLOUD, "NRestarts")["NRestarts"])
    cloud.run(["kill", "-STOP", str(main_pid(cloud, CLOUD))])
    wait_until(
        lambda: int(cloud.show(CLOUD, "NRestarts")["NRestarts"]) > before,
        "a restart by the watchdog",
        timeout_s=GUARD_S,
    )
    assert "Watchdog timeout" in cloud.journal(CLOUD, 200)
    wait_until(lambda: http_get(cloud, CLOUD_PORT, "/ready") is not None, "cloud ready again")


def test_cloud_clean_stop_and_a_restart_that_keeps_the_database(cloud: Container) -> None:
    wait_until(lambda: _devices(cloud) is not None, "the cloud answering", timeout_s=GUARD_S)
    cloud.run(
        [
            "setpriv",
            "--reuid=cloud-sync",
            "--regid=cloud-sync",
            "--init-groups",
            "/opt/edgetwin/bin/cloud-sync",
            "devices",
            "add",
            "kept-pump",
            "--config",
            "/etc/cloud-sync/cloud.toml",
        ],
        env={"HOME": "/var/lib/cloud-sync"},
    )
    cloud.systemctl("stop", CLOUD)
    shown = cloud.show(CLOUD, "ActiveState", "Result")
    assert (shown["ActiveState"], shown["Result"]) == ("inactive", "success"), cloud.journal(CLOUD)
    cloud.systemctl("start", CLOUD)
    assert "kept-pump" in (_devices(cloud) or [])
