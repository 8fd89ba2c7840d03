"""The sd_notify protocol against a real datagram socket given as NOTIFY_SOCKET.

``edge-agent run`` as a child process reads a real pty through pyserial; the test plays
systemd: it binds the socket, sets WATCHDOG_USEC, and reads what the agent sends. READY
comes once the agent is up, WATCHDOG pings while lines flow, none once the connected
device goes silent (a stalled pipeline), and they come back with the lines. Time
limits are guards; the silent window is counted in watchdog periods.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest

from edge_agent.daemon.watchdog import Progress, ProgressMonitor
from edge_agent.sources.base import SourceState
from edgetwin_common.notify import Notifier, watchdog_period_s
from edgetwin_common.testing import free_port
from tests.edge_agent.daemon.fake_systemd import FakeSystemd
from tests.edge_agent.integration.helpers import agent_process, agent_toml

WATCHDOG_USEC = 200_000
"""0.2 s: pings every 0.1 s."""
STALL_AFTER_S = 0.5
SILENT_PERIODS = 20
"""Watchdog periods of silence the test waits for while the device says nothing."""


class Device:
    """The far end of a pty: prints CSV lines at a steady pace while ``flowing`` is set."""

    def __init__(self) -> None:
        self.master, slave = os.openpty()
        self.port = os.ttyname(slave)
        self._slave = slave  # held open so the pty stays while the agent reopens
        self.flowing = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        i = 0
        while not self._stop.wait(0.02):
            if self.flowing.is_set():
                os.write(self.master, f"{40 + (i % 10) * 0.1:.2f}\n".encode())
                i += 1

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        os.close(self.master)
        os.close(self._slave)


@pytest.fixture
def device() -> Iterator[Device]:
    d = Device()
    yield d
    d.close()


def test_ready_then_pings_only_while_readings_flow(tmp_path: Path, device: Device) -> None:
    systemd = FakeSystemd(tmp_path / "notify.sock")
    port = free_port()
    body = f"""
stall_after_s = {STALL_AFTER_S}

[[sources]]
type = "serial"
name = "mcu"
port = "{device.port}"
format = "csv"
csv_fields = ["temp"]
read_timeout_s = 0.05
[sources.fields.temp]
channel = "temp"
"""
    # stall_after_s belongs to [agent]: agent_toml opens that table first.
    config = tmp_path / "agent.toml"
    config.write_text(agent_toml(tmp_path, body, port=port))
    env = {"NOTIFY_SOCKET": str(systemd.path), "WATCHDOG_USEC": str(WATCHDOG_USEC)}
    with closing(systemd.sock), agent_process(config, port, tmp_path / "agent.log", env) as agent:
        first = systemd.wait_for("READY")
        assert first[-1]["READY"] == "1"
        assert not any("WATCHDOG" in m for m in first), "a ping before READY"
        assert "model" in first[-1]["STATUS"]

        device.flowing.set()
        pings = [m for m in systemd.wait_for("WATCHDOG") if "WATCHDOG" in m]
        for _ in range(5):
            pings += [m for m in systemd.wait_for("WATCHDOG") if "WATCHDOG" in m]
        assert len(pings) >= 6 and all(m["WATCHDOG"] == "1" for m in pings)

        device.flowing.clear()
        stalled = systemd.wait_for("STATUS")
        while "stalled" not in stalled[-1].get("STATUS", ""):
            stalled = systemd.wait_for("STATUS")
        systemd.drain()
        silent = []
        for _ in range(SILENT_PERIODS):
            message = systemd.receive(WATCHDOG_USEC / 2e6)
            if message is not None:
                silent.append(message)
        assert not any("WATCHDOG" in m for m in silent), silent

        device.flowing.set()
        back = systemd.wait_for("WATCHDOG")
        assert any("flowing" in m.get("STATUS", "") for m in back) or back[-1]["WATCHDOG"] == "1"
        assert "pipeline stalled" in agent.output()

        assert agent.signal(signal.SIGTERM) == 0
        assert "STOPPING" in {k for m in systemd.drain() for k in m}


def test_no_pings_without_a_watchdog_and_nothing_without_a_socket() -> None:
    assert watchdog_period_s({}) is None
    assert watchdog_period_s({"WATCHDOG_USEC": "0"}) is None
    assert watchdog_period_s({"WATCHDOG_USEC": "30000000"}) == 15.0
    assert watchdog_period_s({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}) is None
    assert Notifier.from_env({}) is None
    with pytest.raises(ValueError, match="NOTIFY_SOCKET"):
        Notifier("relative/path")


def test_abstract_socket_and_a_vanished_manager(tmp_path: Path) -> None:
    name = f"edgetwin-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as receiver:
        receiver.bind("\0" + name)
        notifier = Notifier(f"@{name}")
        assert notifier.ready("up")
        assert receiver.recv(100) == b"READY=1\nSTATUS=up"
    gone = Notifier(str(tmp_path / "nobody-listens.sock"))
    assert not gone.watchdog()  # reported, never raised
    assert gone.sent == 0
    gone.close()
    notifier.close()


def test_progress_monitor_states() -> None:
    m = ProgressMonitor(stall_after_s=10.0)
    connected, down = [SourceState.CONNECTED], [SourceState.DISCONNECTED]
    assert m.observe(0.0, 0, connected) is Progress.FLOWING
    assert m.observe(5.0, 3, connected) is Progress.FLOWING
    assert m.observe(15.0, 3, connected) is Progress.FLOWING  # 10 s since the last reading
    assert m.observe(15.1, 3, connected) is Progress.STALLED
    assert m.observe(16.0, 4, connected) is Progress.FLOWING
    assert m.observe(100.0, 4, down) is Progress.WAITING  # the device is away: no restart
    assert m.observe(105.0, 4, connected) is Progress.FLOWING  # a grace period after it returns
    assert m.observe(111.0, 4, connected) is Progress.STALLED
    assert m.observe(200.0, 4, [SourceState.FINISHED]) is Progress.WAITING
