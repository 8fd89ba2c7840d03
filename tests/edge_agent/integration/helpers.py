"""Shared pieces of the integration tests: the CLI as a real subprocess, free ports,
generated CSVs and read-only looks into a store file. Timeouts are guards, never
assertions."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from edgetwin_common.testing import wait_until
from tests.edge_agent.store.blockrows import load_readings

GUARD_S = 60.0
"""Upper bound on any wait here: a hang fails the test instead of stalling the suite."""

T0 = 1_700_000_000
"""UNIX time of the first row of generated CSVs."""


def cli(*args: str) -> list[str]:
    """The argv of ``edge-agent ARGS...`` run by this interpreter."""
    return [sys.executable, "-m", "edge_agent", *args]


def run_cli(
    args: Sequence[str], cwd: Path, timeout_s: float = GUARD_S
) -> subprocess.CompletedProcess[str]:
    """Run ``edge-agent`` to completion; stdout and stderr captured as text."""
    return subprocess.run(
        cli(*args), cwd=cwd, capture_output=True, text=True, timeout=timeout_s, check=False
    )


@dataclass
class AgentProcess:
    """``edge-agent run`` as a child process, its output in files (no pipe to fill)."""

    proc: subprocess.Popen[bytes]
    url: str
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def get(self, path: str) -> Any:
        """GET ``path`` from the agent's API; the decoded JSON (raises on an HTTP error)."""
        with httpx.Client(base_url=self.url, timeout=5.0) as client:
            response = client.get(path)
        response.raise_for_status()
        return response.json()

    def status(self) -> dict[str, Any]:
        data: dict[str, Any] = self.get("/status")
        return data

    def is_ready(self) -> bool:
        assert self.proc.poll() is None, f"agent exited {self.proc.returncode}:\n{self.output()}"
        try:
            with httpx.Client(base_url=self.url, timeout=2.0) as client:
                response = client.get("/ready")
        except httpx.TransportError:
            return False
        return response.status_code == 200 and response.json().get("status") == "ready"

    def wait_ready(self) -> None:
        wait_until(self.is_ready, f"{self.url}/ready", timeout_s=GUARD_S)

    def signal(self, sig: signal.Signals) -> int:
        """Send ``sig`` and wait for the exit; returns the exit code."""
        self.proc.send_signal(sig)
        return self.proc.wait(GUARD_S)


@contextmanager
def agent_process(
    config: Path, port: int, log: Path, env: dict[str, str] | None = None
) -> Iterator[AgentProcess]:
    """Start ``edge-agent run --config CONFIG`` (whose [http] port is ``port``, with
    ``env`` added to the environment); kill it on the way out if the test left it running."""
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            cli("run", "--config", str(config)),
            cwd=config.parent,
            stdout=sink,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
        )
    try:
        yield AgentProcess(proc, f"http://127.0.0.1:{port}", log)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(GUARD_S)


def write_series(
    path: Path, rows: int, *, high: range = range(0), bad: dict[int, str] | None = None
) -> None:
    """A ``timestamp,temp`` CSV, one row a second from ``T0``: a slow wave around 40,
    100 on the rows in ``high``, and ``bad[i]`` written verbatim instead of row i."""
    lines = ["timestamp,temp"]
    for i in range(rows):
        if bad and i in bad:
            lines.append(bad[i])
            continue
        value = 100.0 if i in high else 40.0 + 0.5 * ((i % 40) / 20.0 - 1.0) ** 2
        lines.append(f"{T0 + i},{value:.4f}")
    path.write_text("\n".join(lines) + "\n")


def agent_toml(data_dir: Path, body: str, *, port: int | None = None) -> str:
    """A config text with [agent] pointing at ``data_dir`` and [http] on ``port``
    (None: HTTP off)."""
    http = "enabled = false" if port is None else f'host = "127.0.0.1"\nport = {port}'
    return (
        f'[agent]\nname = "it-agent"\ndata_dir = "{data_dir}"\nlog_format = "text"\n'
        f"{body}\n[http]\n{http}\n"
    )


@dataclass(frozen=True)
class StoreSnapshot:
    integrity: str
    readings: int
    alarm_ids: frozenset[int]
    alarm_events: int


def inspect_store(path: Path, scratch: Path | None = None) -> StoreSnapshot:
    """Open a store file that no process holds and read what a restart would find.

    scratch: a folder to copy the database and its WAL into first, so that the next
    agent start, not this look, is what recovers the original after a crash.
    """
    assert path.is_file(), f"no store at {path}"
    if scratch is not None:
        scratch.mkdir(parents=True, exist_ok=True)
        for suffix in ("", "-wal"):
            original = path.with_name(path.name + suffix)
            if original.exists():
                shutil.copyfile(original, scratch / original.name)
        path = scratch / path.name
    with closing(sqlite3.connect(path)) as conn:
        integrity = conn.execute("PRAGMA integrity_check").fetchone()[0]
        readings = load_readings(conn)
        ids = frozenset(row[0] for row in conn.execute("SELECT id FROM alarms"))
        events = conn.execute("SELECT count(*) FROM alarm_events").fetchone()[0]
    return StoreSnapshot(str(integrity), int(readings), ids, int(events))
