"""Pieces of the end-to-end tests: `cloud-sync serve` and `edge-agent run` as real
subprocesses, a round-robin HTTP proxy in front of cloud replicas, and read-only looks
into both sides' databases. Timeouts are guards, never assertions."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select

from cloud_sync.db.models import Device, StoredAlarmEvent, StoredBatch, StoredSummary
from cloud_sync.db.session import make_engine
from edgetwin_common.testing import free_port, wait_until
from tests.edge_agent.integration.helpers import T0

GUARD_S = 60.0
"""Upper bound on any wait here: a hang fails the test instead of stalling the suite."""
ADMIN_TOKEN = "e2e-admin-token-0123456789abcdef"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
CHANNELS = ("temp", "pressure", "flow")
ALARM_RULE = "temp-high"
SummaryKey = tuple[str, float]
"""(channel, start): what identifies a summary on both sides."""
EventKey = tuple[int, str, float]
"""(alarm id, kind, ts): what identifies an alarm event on both sides."""


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# -- the cloud ---------------------------------------------------------------------------


def cloud_cli(*args: str) -> list[str]:
    """The argv of ``cloud-sync ARGS...`` run by this interpreter."""
    return [sys.executable, "-m", "cloud_sync", *args]


def write_cloud_toml(path: Path, db_url: str) -> Path:
    path.write_text(
        f'[database]\nurl = "{db_url}"\npool_size = 5\n\n[auth]\nadmin_token = "{ADMIN_TOKEN}"\n'
    )
    return path


def register_device(config: Path, name: str) -> str:
    """``cloud-sync devices add NAME``: the token it prints (alone on stdout)."""
    done = subprocess.run(
        cloud_cli("devices", "add", name, "--config", str(config)),
        cwd=config.parent,
        capture_output=True,
        text=True,
        timeout=GUARD_S,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    token = done.stdout.strip()
    assert token and "\n" not in token, done.stdout
    return token


@dataclass
class CloudServer:
    """``cloud-sync serve --config CONFIG --port PORT`` as a child process that can be
    stopped (SIGTERM or SIGKILL) and started again on the same port and database."""

    config: Path
    log_dir: Path
    name: str = "cloud"
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.log_dir / f"{self.name}-{self.starts}.log"

    def start(self) -> None:
        assert self.proc is None or self.proc.poll() is not None, "already running"
        self.starts += 1
        argv = cloud_cli(
            "serve", "--config", str(self.config), "--port", str(self.port), "--log-level", "info"
        )
        with self.log.open("wb") as sink:
            self.proc = subprocess.Popen(
                argv, cwd=self.config.parent, stdout=sink, stderr=subprocess.STDOUT
            )
        wait_until(self.is_ready, f"{self.name} {self.url}/ready")

    def is_ready(self) -> bool:
        assert self.proc is not None
        assert self.proc.poll() is None, (
            f"{self.name} exited {self.proc.returncode}:\n{self.log.read_text(errors='replace')}"
        )
        try:
            response = httpx.get(f"{self.url}/ready", timeout=2.0)
        except httpx.TransportError:
            return False
        return response.status_code == 200

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> int:
        """Send ``sig`` and wait for the exit; returns the exit code."""
        assert self.proc is not None and self.proc.poll() is None
        self.proc.send_signal(sig)
        return self.proc.wait(GUARD_S)

    def terminate(self) -> None:
        """SIGTERM and check the shutdown was graceful. uvicorn re-raises the signal
        after its graceful shutdown, so the exit is "killed by SIGTERM", not 0."""
        code = self.stop(signal.SIGTERM)
        text = self.log.read_text(errors="replace")
        assert code in (0, -signal.SIGTERM), f"{self.name} exited {code}:\n{text}"
        assert "Finished server process" in text, f"{self.name} did not shut down:\n{text}"

    def kill_if_running(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(GUARD_S)


@contextmanager
def cloud_server(config: Path, log_dir: Path, name: str = "cloud") -> Iterator[CloudServer]:
    server = CloudServer(config, log_dir, name)
    server.start()
    try:
        yield server
    finally:
        server.kill_if_running()


@dataclass(frozen=True)
class CloudView:
    """What the cloud database holds for one device."""

    summaries: dict[SummaryKey, int]
    """(channel, start) -> count, one entry per stored row."""
    summary_rows: int
    events: Counter[EventKey]
    """How often each alarm event is stored (1 each when exactly once)."""
    batches: list[int]
    """Stored batch sequences."""
    last_sequence: int
    duplicates: int


def cloud_view(db_url: str, device: str) -> CloudView:
    """Read the cloud's tables for ``device`` directly (the API shows summaries only)."""
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            dev = conn.execute(select(Device).where(Device.name == device)).one()
            rows = conn.execute(
                select(StoredSummary.channel, StoredSummary.start, StoredSummary.count).where(
                    StoredSummary.device_id == dev.id
                )
            ).all()
            events = conn.execute(
                select(StoredAlarmEvent.alarm_id, StoredAlarmEvent.kind, StoredAlarmEvent.ts).where(
                    StoredAlarmEvent.device_id == dev.id
                )
            ).all()
            batches = conn.execute(
                select(StoredBatch.sequence).where(StoredBatch.device_id == dev.id)
            ).all()
    finally:
        engine.dispose()
    return CloudView(
        summaries={(str(ch), float(start)): int(n) for ch, start, n in rows},
        summary_rows=len(rows),
        events=Counter((int(e.alarm_id), str(e.kind), float(e.ts)) for e in events),
        batches=sorted(int(b.sequence) for b in batches),
        last_sequence=int(dev.last_sequence),
        duplicates=int(dev.duplicates),
    )


def api_summaries(url: str, device: str) -> dict[SummaryKey, int]:
    """Every summary of ``device`` through the admin API, paged per channel by ``since``."""
    found: dict[SummaryKey, int] = {}
    with httpx.Client(base_url=url, headers=ADMIN, timeout=30.0) as http:
        for channel in CHANNELS:
            since = 0.0
            while True:
                response = http.get(
                    f"/v1/devices/{device}/summaries",
                    params={"channel": channel, "since": since, "limit": 10_000},
                )
                response.raise_for_status()
                page = response.json()
                if not page:
                    break
                for record in page:
                    key = (record["channel"], float(record["start"]))
                    assert key not in found, f"the API lists {key} twice"
                    found[key] = int(record["count"])
                since = float(page[-1]["start"])
    return found


# -- the agent ---------------------------------------------------------------------------


def write_channels_csv(path: Path, rows: int, step_s: float = 2.0, alarm_every: int = 150) -> None:
    """A ``timestamp,temp,pressure,flow`` CSV, one row every ``step_s`` from T0. temp goes
    to 100 for 10 rows out of every ``alarm_every`` (the temp-high alarm raises, then
    clears); the other channels are slow waves."""
    lines = ["timestamp," + ",".join(CHANNELS)]
    for i in range(rows):
        phase = (i % 40) / 20.0 - 1.0
        temp = 100.0 if i % alarm_every in range(alarm_every // 2, alarm_every // 2 + 10) else 40.0
        temp += 0.5 * phase * phase
        pressure = 5.0 + 0.2 * phase
        flow = 12.0 - 0.3 * phase * phase
        lines.append(f"{T0 + i * step_s:.1f},{temp:.4f},{pressure:.4f},{flow:.4f}")
    path.write_text("\n".join(lines) + "\n")


def agent_toml(
    *,
    data_dir: Path,
    csv: Path,
    port: int,
    sync_url: str,
    token: str,
    speed: float = 200.0,
    summary_interval_s: float = 10.0,
    flush_interval_s: float = 0.2,
    interval_s: float = 1.0,
    max_batch_bytes: int = 16_384,
) -> str:
    """An agent config: the replay source, the temp-high alarm, [sync] at ``sync_url``.
    Small batches (``max_batch_bytes`` of JSON) so a backlog takes many of them."""
    return f"""
[agent]
name = "e2e-agent"
data_dir = "{data_dir}"
log_format = "text"

[[sources]]
type = "replay"
name = "history"
path = "{csv}"
speed = {speed}

[[alarms]]
name = "{ALARM_RULE}"
channel = "temp"
type = "value_above"
set = 80
clear = 75

[store]
summary_interval_s = {summary_interval_s}
flush_interval_s = {flush_interval_s}

[sync]
enabled = true
url = "{sync_url}"
token = "{token}"
interval_s = {interval_s}
timeout_s = 5
max_batch_bytes = {max_batch_bytes}
backoff = {{ initial_s = 0.2, max_s = 1 }}

[http]
host = "127.0.0.1"
port = {port}
"""


def sync_status(agent_url: str) -> dict[str, Any] | None:
    """The agent's /status ``sync`` section; None while it does not answer."""
    try:
        response = httpx.get(f"{agent_url}/status", timeout=5.0)
    except httpx.TransportError:
        return None
    if response.status_code != 200:
        return None
    sync: dict[str, Any] = response.json()["sync"]
    return sync


def is_drained(agent_url: str) -> bool:
    """Outbox empty and nothing in flight, by the agent's own /status."""
    sync = sync_status(agent_url)
    return sync is not None and sum(sync["backlog"].values()) == 0 and sync["in_flight"] is None


def wait_quiescent(agent_url: str, timeout_s: float = 2 * GUARD_S) -> dict[str, Any]:
    """Wait until the agent's sync has nothing left to do: the outbox drained, nothing in
    flight, and a later attempt (the idle twin poll) sent no batch. Returns that /status
    ``sync``. (A drained outbox alone is not enough: a reported state that changed, e.g.
    the replay finished, still goes out in a batch without rows.)"""
    deadline = time.monotonic() + timeout_s
    while True:
        wait_until(lambda: is_drained(agent_url), "the outbox to drain", timeout_s)
        first = sync_status(agent_url)
        assert first is not None

        def attempted_since(first: dict[str, Any] = first) -> bool:
            now = sync_status(agent_url)
            return (
                now is not None
                and (now["last_attempt_ts"] or 0) > (first["last_attempt_ts"] or 0)
                and is_drained(agent_url)
            )

        wait_until(attempted_since, "the next sync attempt", timeout_s)
        later = sync_status(agent_url)
        assert later is not None
        keys = ("batches_sent", "last_sequence", "reported_version")
        if all(later[k] == first[k] for k in keys) and later["in_flight"] is None:
            return later
        assert time.monotonic() < deadline, "the agent's sync never settled"


@dataclass(frozen=True)
class StoreView:
    """What the agent's store file holds (read with sqlite3 after the agent stopped)."""

    summaries: dict[SummaryKey, int]
    """(channel, start) -> count."""
    events: Counter[EventKey]
    outbox_rows: int
    inflight: int
    quarantined: int
    dropped: int
    """meta.outbox_dropped: summaries the outbox cap dropped (never sent)."""
    acked_sequence: int
    """meta.sync_acked_sequence: the last batch the cloud acknowledged."""


def store_view(path: Path) -> StoreView:
    assert path.is_file(), f"no store at {path}"
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
        summaries = {
            (str(name), float(start)): int(count)
            for name, start, count in conn.execute(
                "SELECT c.name, s.start, s.count FROM summaries s JOIN channels c"
                " ON c.id = s.channel_id"
            )
        }
        events = Counter(
            (int(a), str(k), float(t))
            for a, k, t in conn.execute("SELECT alarm_id, kind, ts FROM alarm_events")
        )
        outbox = int(conn.execute("SELECT count(*) FROM outbox").fetchone()[0])
        inflight = int(conn.execute("SELECT count(*) FROM sync_inflight").fetchone()[0])
        quarantined = int(conn.execute("SELECT count(*) FROM sync_quarantine").fetchone()[0])
        meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
    return StoreView(
        summaries,
        events,
        outbox,
        inflight,
        quarantined,
        int(meta.get("outbox_dropped", 0)),
        int(meta.get("sync_acked_sequence", 0)),
    )


# -- a round-robin HTTP proxy ------------------------------------------------------------


class RoundRobinProxy:
    """An HTTP/1.1 proxy on 127.0.0.1 (a free port) that sends each request to the next
    upstream in turn — a load balancer in front of stateless replicas.

    Each request is forwarded on a new upstream connection with ``Connection: close``,
    so the answer carries it too and the client opens a new connection (to the next
    replica) for its next request. Counts what went where (``forwarded[upstream]``).
    Runs its own event loop in a thread; use as a context manager.
    """

    def __init__(self, upstreams: list[tuple[str, int]]) -> None:
        self.upstreams = upstreams
        self.forwarded: Counter[int] = Counter()
        self.failed = 0
        """Requests whose upstream did not answer (the client saw the connection drop)."""
        self.exchanges: list[tuple[str, bytes]] = []
        """(request line, raw answer) of every request forwarded, in order."""
        self._next = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rr-proxy", daemon=True)
        self._server: asyncio.Server | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> RoundRobinProxy:
        self._thread.start()
        assert self._ready.wait(10), "proxy did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(
            asyncio.start_server(self._handle, "127.0.0.1", 0)
        )
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()
        self._server.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                lines = head.split(b"\r\n")
                headers = [h for h in lines[1:] if h]
                length = 0
                kept: list[bytes] = []
                for h in headers:
                    name, _, value = h.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value.strip())
                    if name.strip().lower() in (b"connection", b"keep-alive"):
                        continue
                    kept.append(h)
                body = await reader.readexactly(length) if length else b""
                request = b"\r\n".join([lines[0], *kept, b"Connection: close", b"", b""]) + body
                index = self._next % len(self.upstreams)
                self._next += 1
                answer = await self._forward(self.upstreams[index], request)
                if answer is None:
                    self.failed += 1
                    return  # the client sees the connection drop, as with a dead backend
                self.forwarded[index] += 1
                self.exchanges.append((lines[0].decode("latin-1"), answer))
                writer.write(answer)
                await writer.drain()
                return  # the answer says Connection: close
        finally:
            writer.close()

    @staticmethod
    async def _forward(upstream: tuple[str, int], request: bytes) -> bytes | None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*upstream)
        except OSError:
            return None
        try:
            up_writer.write(request)
            await up_writer.drain()
            answer = await up_reader.read()  # until the replica closes (Connection: close)
        except OSError:
            return None
        finally:
            up_writer.close()
        return answer or None


def answer_json(answer: bytes) -> Any:
    """The JSON body of a raw HTTP/1.1 answer (Content-Length framed, as uvicorn sends)."""
    head, _, body = answer.partition(b"\r\n\r\n")
    assert b"transfer-encoding: chunked" not in head.lower(), head
    return json.loads(body)


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    return int(value) if value.strip() else default
