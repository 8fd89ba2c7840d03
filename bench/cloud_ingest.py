"""Cloud ingest: 1,000 simulated devices POSTing realistic gzip batches to a real server.

`cloud-sync serve` (one process) and the same app under `uvicorn --workers 2`, on an
SQLite file and on a fresh PostgreSQL database, each driven by wrk (Debian's `wrk`
package) with a generated Lua script that walks the devices round-robin, each device's
sequences in order. Prints batches/s and wrk's latency percentiles, then verifies by
counting: after a resend of each device's unanswered tail (as a device would), the
database holds exactly the (device, sequence) batches sent, with their summaries and
alarm events; a second replay of stored batches is answered duplicate=true and adds
nothing. A bare FastAPI endpoint doing one SQLite insert per request, driven by the same
wrk settings and bodies in the same run, is the reference the figures are divided by.

Targets: >= 500 batches/s and p99 <= 100 ms. Also: bytes on the wire per device per day
at the default sync (10 s) and summary (60 s) intervals, 4 channels at 1 Hz.

Needs wrk (`apt-get install wrk`) and, for the PostgreSQL runs, a server on
127.0.0.1:5432 that user postgres can create databases on (CLOUD_INGEST_PG: conninfo).
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import json
import math
import os
import random
import secrets
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from fastapi import Request  # module level: the bare app's annotations resolve here

from edgetwin_common.testing import free_port

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "bench"
VENV_BIN = Path(sys.executable).parent
PG_SERVER = os.environ.get("CLOUD_INGEST_PG", "host=127.0.0.1 port=5432 user=postgres dbname=test")
CHANNELS = ("bearing_temp", "vibration", "current", "ambient")
SYNC_INTERVAL_S = 10.0
SUMMARY_INTERVAL_S = 60.0
BATCHES_PER_DAY = round(86_400 / SYNC_INTERVAL_S)
ALARM_PROBABILITY = 0.004
"""Chance that a batch carries an alarm raise (and, a few batches later, its clear)."""
T0 = time.time() - 3 * 86_400
"""Device clocks start three days ago: every timestamp is in the past for the server."""
RESEND_TAIL = 2
"""Last sequences per device resent after the timed pass (covers requests cut in flight)."""
REPLAY_HEAD = 1
"""First sequences per device replayed to check duplicate=true."""
DATABASE_URL_ENV = "CLOUD_INGEST_DATABASE_URL"
BARE_DB_ENV = "CLOUD_INGEST_BARE_DB"

# --------------------------------------------------------------------------------------
# Apps the bench runs under uvicorn itself (import strings cloud_ingest:...).


def cloud_app() -> Any:
    """cloud-sync's own app (``create_app``) on $CLOUD_INGEST_DATABASE_URL, for
    ``uvicorn --factory --workers N`` (``cloud-sync serve`` runs one process)."""
    from cloud_sync.config import load_config
    from cloud_sync.db.session import make_engine
    from cloud_sync.http.app import create_app

    config = load_config(None, os.environ[DATABASE_URL_ENV])
    return create_app(config, make_engine(config.database.url, config.database.pool_size))


def bare_app() -> Any:
    """The reference: read the body, insert one row into SQLite (WAL, synchronous=NORMAL,
    like cloud-sync), answer a small JSON. No auth, no parsing, no validation."""
    from fastapi import FastAPI
    from fastapi.concurrency import run_in_threadpool

    path = os.environ[BARE_DB_ENV]
    local = threading.local()

    def connection() -> sqlite3.Connection:
        conn = getattr(local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(path, timeout=10, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute(
                "CREATE TABLE IF NOT EXISTS hits (id INTEGER PRIMARY KEY, token TEXT, "
                "bytes INTEGER, ts REAL)"
            )
            local.conn = conn
        return conn

    def insert(token: str, size: int) -> None:
        connection().execute(
            "INSERT INTO hits (token, bytes, ts) VALUES (?, ?, ?)", (token, size, time.time())
        )

    app = FastAPI()

    @app.post("/v1/batches")
    async def hit(request: Request) -> dict[str, bool]:
        body = await request.body()
        await run_in_threadpool(insert, request.headers.get("authorization", ""), len(body))
        return {"stored": True}

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    return app


# --------------------------------------------------------------------------------------
# Realistic batches, as edge_agent.sync builds them.


@dataclass
class DeviceBatches:
    name: str
    token: str = ""
    bodies: list[bytes] = field(default_factory=list)
    summaries: list[int] = field(default_factory=list)
    alarms: list[int] = field(default_factory=list)


def _summary(channel: str, start: float, level: float, rng: random.Random) -> dict[str, Any]:
    spread = {"bearing_temp": 0.4, "vibration": 0.15, "current": 0.3, "ambient": 0.05}[channel]
    mean = level + rng.gauss(0, spread / 4)
    std = abs(rng.gauss(spread, spread / 5))
    err = abs(rng.gauss(spread * 0.6, spread / 10))
    return {
        "channel": channel,
        "start": start,
        "end": start + SUMMARY_INTERVAL_S,
        "interval_s": SUMMARY_INTERVAL_S,
        "count": 60,
        "min": mean - 2.1 * std,
        "max": mean + 2.3 * std,
        "mean": mean,
        "std": std,
        "last": mean + rng.gauss(0, std),
        "last_ts": start + 59.0 + rng.random() * 0.01,
        "error_count": 60,
        "error_mean": rng.gauss(0, err / 5),
        "error_mae": err,
        "error_rmse": err * 1.25,
        "error_max_abs": err * 3.2,
        "score_max": abs(rng.gauss(2.0, 1.0)),
    }


def _alarm(alarm_id: int, kind: str, ts: float, raised_at: float, value: float) -> dict[str, Any]:
    cleared = kind == "cleared"
    return {
        "kind": kind,
        "ts": ts,
        "alarm": {
            "id": alarm_id,
            "rule": "bearing-hot",
            "channel": "bearing_temp",
            "kind": "value_above",
            "severity": "warning",
            "state": "cleared" if cleared else "active_unacknowledged",
            "raised_at": raised_at,
            "value": value,
            "message": f"bearing_temp {value:.2f} above 85.00",
            "acked_at": None,
            "acked_by": None,
            "cleared_at": ts if cleared else None,
        },
    }


def device_batches(index: int, count: int) -> DeviceBatches:
    """``count`` consecutive batches of one simulated pump (4 channels at 1 Hz, 60 s
    summaries, a sync every 10 s): each carries the reported state (its last values and
    counters change every second, so its version goes up every batch), every sixth one
    the four summaries of the minute that closed, now and then an alarm event."""
    from edgetwin_contracts.batch import Batch

    rng = random.Random(index)
    device = DeviceBatches(f"bench-{index:04d}")
    levels = {"bearing_temp": 62.0, "vibration": 2.1, "current": 11.8, "ambient": 24.5}
    levels = {ch: v * (1 + rng.uniform(-0.05, 0.05)) for ch, v in levels.items()}
    start = T0 + rng.uniform(0, SUMMARY_INTERVAL_S)  # devices out of phase
    booted = start - rng.uniform(3600, 30 * 86_400)
    alarm_id = 0
    open_alarm: dict[str, Any] | None = None
    for k in range(1, count + 1):
        now = start + k * SYNC_INTERVAL_S
        prev = now - SYNC_INTERVAL_S
        boundary = math.floor(now / SUMMARY_INTERVAL_S) * SUMMARY_INTERVAL_S
        summaries = []
        if boundary > prev:  # a minute closed since the last sync
            summaries = [
                _summary(ch, boundary - SUMMARY_INTERVAL_S, levels[ch], rng) for ch in CHANNELS
            ]
        alarms = []
        if open_alarm is not None and rng.random() < 0.3:
            alarms.append(_alarm(alarm_id, "cleared", now - 2.0, open_alarm["raised_at"], 84.1))
            open_alarm = None
        elif open_alarm is None and rng.random() < ALARM_PROBABILITY:
            alarm_id += 1
            event = _alarm(alarm_id, "raised", now - 4.0, now - 4.0, 85.0 + rng.random())
            alarms.append(event)
            open_alarm = event["alarm"]
        seconds = int(now - booted)
        reported = {
            "version": k,
            "agent_version": "0.9.0",
            "model": {
                "name": "default_forecaster",
                "version": "1.0.0",
                "sha256": "9f2c" + "0" * 56 + "a1b2",
            },
            "config_hash": f"{index:08x}" + "3c" * 28,
            "sources": {
                "pump": {
                    "type": "SerialSource",
                    "state": "connected",
                    "since": booted,
                    "last_reading_ts": now - rng.random(),
                    "last_error": None,
                    "counters": {"lines_ok": seconds, "lines_partial": 1, "reconnects": 0},
                }
            },
            "channels": {
                ch: {
                    "health": [],
                    "last_ts": now - rng.random(),
                    "last_value": round(levels[ch] + rng.gauss(0, 0.2), 3),
                    "is_warm": True,
                    "rejected": {},
                }
                for ch in CHANNELS
            },
            "open_alarms": [] if open_alarm is None else [open_alarm],
            "counters": {
                "alarms_raised": alarm_id,
                "alarms_acknowledged": 0,
                "alarms_cleared": alarm_id - (open_alarm is not None),
                "alarms_forgotten": 0,
            },
            "desired_version_applied": 0,
            "applied": [],
            "refused": [],
        }
        batch = Batch.model_validate(
            {
                "sequence": k,
                "created_at": now,
                "alarms": alarms,
                "summaries": summaries,
                "reported": reported,
            }
        )
        body = gzip.compress(batch.model_dump_json().encode(), compresslevel=6, mtime=0)
        device.bodies.append(body)
        device.summaries.append(len(summaries))
        device.alarms.append(len(alarms))
    return device


# --------------------------------------------------------------------------------------
# wrk and its Lua script

LUA = r"""
-- Generated by bench/cloud_ingest.py. Environment: CI_MODE (run|replay), CI_INDEX,
-- CI_BLOB, CI_THREADS, CI_RANGES (replay: "device from to" lines), CI_WRAP (1: start
-- over when every device is exhausted), CI_OUT (results, written by done()).
local threads = {}
local counter = 0

function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

function init(args)
  local nthreads = tonumber(os.getenv("CI_THREADS"))
  wrap = os.getenv("CI_WRAP") == "1"
  local ranges = {}
  local rpath = os.getenv("CI_RANGES")
  if rpath ~= nil and rpath ~= "" then
    for line in io.lines(rpath) do
      local d, a, b = line:match("^(%d+) (%d+) (%d+)$")
      ranges[tonumber(d)] = {tonumber(a), tonumber(b)}
    end
  end
  local blob = io.open(os.getenv("CI_BLOB"), "rb")
  devices = {}
  local current = nil
  for line in io.lines(os.getenv("CI_INDEX")) do
    local kind, a, b, c = line:match("^(%a) (%S+) (%S+) ?(%S*)$")
    if kind == "d" then
      local d = tonumber(a)
      current = nil
      if d % nthreads == tid then
        local r = ranges[d]
        if rpath == nil or rpath == "" or r ~= nil then
          current = {id = d, token = b, bodies = {}, first = 1, next = 1, last = 0}
          if r ~= nil then current.first = r[1]; current.next = r[1] end
          table.insert(devices, current)
        end
      end
    elseif current ~= nil then  -- "b <seq> <offset> <length>"
      local seq = tonumber(a)
      local r = ranges[current.id]
      if r == nil or (seq >= r[1] and seq <= r[2]) then
        blob:seek("set", tonumber(b))
        current.bodies[seq] = blob:read(tonumber(c))
        current.last = seq
      end
    end
  end
  blob:close()
  pos = 1
  verified = false
  sent = 0
  fresh = 0
  dup = 0
  other = {}
  exhausted = 0
  sentby = {}
end

function request()
  if not verified then
    -- wrk calls request() once before the run to inspect it, and never sends that one.
    verified = true
    return wrk.format("GET", "/health")
  end
  local n = #devices
  for _ = 1, n do
    local dev = devices[pos]
    pos = pos % n + 1
    if dev.next <= dev.last then
      local seq = dev.next
      dev.next = seq + 1
      sent = sent + 1
      sentby[dev.id] = seq
      return wrk.format("POST", "/v1/batches", {
        ["Authorization"] = "Bearer " .. dev.token,
        ["Content-Type"] = "application/json",
        ["Content-Encoding"] = "gzip",
      }, dev.bodies[seq])
    end
  end
  if wrap then
    for _, dev in ipairs(devices) do dev.next = dev.first end
    return request()
  end
  -- Nothing left: harmless fillers until wrk's -d is over (stopping the thread would drop
  -- the answers still in flight on its other connections).
  exhausted = exhausted + 1
  return wrk.format("GET", "/health")
end

function response(status, headers, body)
  if status == 200 then
    if string.find(body, '"sequence"', 1, true) == nil then
      if string.find(body, '"stored"', 1, true) ~= nil then fresh = fresh + 1 end
    elseif string.find(body, '"duplicate":true', 1, true) ~= nil then
      dup = dup + 1
    else
      fresh = fresh + 1
    end
  else
    local key = tostring(status)
    other[key] = (other[key] or 0) + 1
  end
end

function done(summary, latency, requests)
  local out = io.open(os.getenv("CI_OUT"), "w")
  local e = summary.errors
  out:write(string.format("summary %d %d %d %d %d %d %d\n", summary.requests,
    summary.duration, e.connect, e.read, e.write, e.status, e.timeout))
  out:write(string.format("latency %d %d %d %d %d %d\n", latency:percentile(50),
    latency:percentile(90), latency:percentile(99), latency:percentile(99.9),
    latency.max, latency.mean))
  for _, t in ipairs(threads) do
    out:write(string.format("thread %d %d %d %d\n", t:get("sent"), t:get("fresh"),
      t:get("dup"), t:get("exhausted")))
    for status, n in pairs(t:get("other")) do
      out:write(string.format("status %s %d\n", status, n))
    end
    for d, seq in pairs(t:get("sentby")) do
      out:write(string.format("sent %d %d\n", d, seq))
    end
  end
  out:close()
end
"""


@dataclass
class WrkResult:
    requests: int
    duration_s: float
    errors: dict[str, int]
    p50_ms: float
    p90_ms: float
    p99_ms: float
    p999_ms: float
    max_ms: float
    sent: int = 0
    fresh: int = 0
    dup: int = 0
    exhausted: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    sent_by_device: dict[int, int] = field(default_factory=dict)
    server_cpu_s: float = 0.0

    @property
    def answered(self) -> int:
        """Batch POSTs answered (fillers not counted)."""
        return self.fresh + self.dup + sum(self.statuses.values())

    @property
    def rate(self) -> float:
        return self.answered / self.duration_s

    @property
    def cpu_ms(self) -> float:
        """Server CPU per answered request, ms (all its processes)."""
        return 1000 * self.server_cpu_s / max(self.answered, 1)


class Load:
    """The pre-generated bodies on disk (one blob + an index the Lua script reads)."""

    def __init__(self, tmp: Path, devices: list[DeviceBatches]) -> None:
        self.tmp = tmp
        self.devices = devices
        self.blob = tmp / "bodies.bin"
        self.index = tmp / "index.txt"
        self.lua = tmp / "ingest.lua"
        self.lua.write_text(LUA)
        self.write_index()

    def write_index(self) -> None:
        offset = 0
        with self.blob.open("wb") as blob, self.index.open("w") as index:
            for i, dev in enumerate(self.devices):
                index.write(f"d {i} {dev.token or 'none'}\n")
                for seq, body in enumerate(dev.bodies, 1):
                    blob.write(body)
                    index.write(f"b {seq} {offset} {len(body)}\n")
                    offset += len(body)

    def wrk(
        self,
        port: int,
        seconds: float,
        args: argparse.Namespace,
        ranges: dict[int, tuple[int, int]] | None = None,
        wrap: bool = False,
    ) -> WrkResult:
        out = self.tmp / "wrk.out"
        env = dict(os.environ)
        env.update(
            CI_INDEX=str(self.index),
            CI_BLOB=str(self.blob),
            CI_THREADS=str(args.threads),
            CI_WRAP="1" if wrap else "0",
            CI_OUT=str(out),
            CI_RANGES="",
        )
        if ranges is not None:
            path = self.tmp / "ranges.txt"
            path.write_text("".join(f"{d} {a} {b}\n" for d, (a, b) in ranges.items() if a <= b))
            env["CI_RANGES"] = str(path)
        cmd = [
            "wrk",
            f"-t{args.threads}",
            f"-c{args.connections}",
            f"-d{max(1, round(seconds))}s",
            "--timeout",
            "10s",
            "-s",
            str(self.lua),
            f"http://127.0.0.1:{port}/v1/batches",
        ]
        subprocess.run(cmd, env=env, check=True, capture_output=True, text=True)
        result: WrkResult | None = None
        lines = out.read_text().splitlines()
        for line in lines:
            kind, *rest = line.split()
            if kind == "summary":
                req, dur, conn, read, write, status, timeout = map(int, rest)
                errors = dict(connect=conn, read=read, write=write, status=status, timeout=timeout)
            elif kind == "latency":
                p50, p90, p99, p999, mx, _mean = (int(v) / 1000 for v in rest)
                result = WrkResult(req, dur / 1e6, errors, p50, p90, p99, p999, mx)
        assert result is not None
        for line in lines:
            kind, *rest = line.split()
            if kind == "thread":
                sent, fresh, dup, exhausted = map(int, rest)
                result.sent += sent
                result.fresh += fresh
                result.dup += dup
                result.exhausted += exhausted
            elif kind == "status":
                result.statuses[rest[0]] = result.statuses.get(rest[0], 0) + int(rest[1])
            elif kind == "sent":
                result.sent_by_device[int(rest[0])] = int(rest[1])
        return result


# --------------------------------------------------------------------------------------
# Servers and databases


@contextlib.contextmanager
def server(
    cmd: list[str], env: dict[str, str], port: int, log: Path
) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("w") as fh:
        proc = subprocess.Popen(cmd, env=env, stdout=fh, stderr=subprocess.STDOUT, cwd=BENCH)
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"server exited ({proc.returncode}):\n{log.read_text()[-2000:]}")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"server did not start:\n{log.read_text()[-2000:]}")
            time.sleep(0.1)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its children (uvicorn's workers), seconds."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    todo = [pid]
    while todo:
        current = todo.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
            for task in Path(f"/proc/{current}/task").iterdir():
                todo.extend(int(c) for c in (task / "children").read_text().split())
        except (OSError, IndexError, ValueError):
            continue
    return total


def cloud_command(url: str, port: int, workers: int) -> tuple[list[str], str]:
    if workers == 1:
        exe = VENV_BIN / "cloud-sync"
        base = [str(exe)] if exe.exists() else [sys.executable, "-m", "cloud_sync"]
        cmd = [*base, "serve", "--database-url", url, "--host", "127.0.0.1"]
        return [*cmd, "--port", str(port), "--log-level", "warning"], "cloud-sync serve"
    cmd = [sys.executable, "-m", "uvicorn", "--factory", "cloud_ingest:cloud_app"]
    cmd += ["--app-dir", str(BENCH), "--workers", str(workers), "--host", "127.0.0.1"]
    cmd += ["--port", str(port), "--log-level", "warning", "--no-access-log"]
    return cmd, f"uvicorn --workers {workers} (create_app)"


@contextlib.contextmanager
def database(backend: str, tmp: Path, tag: str) -> Iterator[str]:
    if backend == "sqlite":
        path = tmp / f"cloud-{tag}.db"
        yield f"sqlite:///{path}"
        return
    import psycopg

    info = psycopg.conninfo.conninfo_to_dict(PG_SERVER)
    name = f"cloudsync_bench_{secrets.token_hex(5)}"
    with psycopg.connect(PG_SERVER, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        user = info.get("user", "postgres")
        yield f"postgresql://{user}@{info.get('host', '127.0.0.1')}:{info.get('port', 5432)}/{name}"
    finally:
        with psycopg.connect(PG_SERVER, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def pg_unavailable() -> str | None:
    try:
        import psycopg

        with psycopg.connect(PG_SERVER, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except Exception as exc:
        return f"{type(exc).__name__}: {str(exc).strip()}"
    return None


def register(url: str, devices: list[DeviceBatches]) -> float:
    """Migrate and register every device through cloud_sync's registry; returns seconds."""
    from cloud_sync.config import normalize_database_url
    from cloud_sync.db.session import make_engine, upgrade
    from cloud_sync.registry import add_device

    engine = make_engine(normalize_database_url(url))
    upgrade(engine)
    t = time.perf_counter()
    for dev in devices:
        dev.token = add_device(engine, dev.name)
    elapsed = time.perf_counter() - t
    engine.dispose()
    return elapsed


@dataclass
class DbCounts:
    batches: int
    summaries: int
    alarm_events: int
    counter_batches: int
    counter_duplicates: int
    per_device: dict[str, tuple[int, int, int]]
    """name -> (rows, min sequence, max sequence)."""


def db_counts(url: str) -> DbCounts:
    from sqlalchemy import text

    from cloud_sync.config import normalize_database_url
    from cloud_sync.db.session import make_engine

    engine = make_engine(normalize_database_url(url))
    with engine.connect() as conn:
        one = conn.execute(
            text(
                "SELECT (SELECT count(*) FROM batches), (SELECT count(*) FROM summaries), "
                "(SELECT count(*) FROM alarm_events), (SELECT sum(batches) FROM devices), "
                "(SELECT sum(duplicates) FROM devices)"
            )
        ).one()
        rows = conn.execute(
            text(
                "SELECT d.name, count(*), min(b.sequence), max(b.sequence) FROM batches b "
                "JOIN devices d ON d.id = b.device_id GROUP BY d.name"
            )
        ).all()
    engine.dispose()
    return DbCounts(
        one[0], one[1], one[2], int(one[3] or 0), int(one[4] or 0), {r[0]: r[1:] for r in rows}
    )


# --------------------------------------------------------------------------------------
# One configuration: server up, timed pass, resend, verify, replay, verify.


@dataclass
class RunResult:
    label: str
    server: str
    main: WrkResult
    ok: bool
    notes: list[str]


def settle(url: str, expected_at_least: int) -> DbCounts:
    """Counts once the server has finished what was in flight (stable for 0.5 s)."""
    last = db_counts(url)
    for _ in range(20):
        time.sleep(0.5)
        now = db_counts(url)
        if now.batches == last.batches and now.batches >= expected_at_least:
            return now
        last = now
    return last


def pass_seconds(ranges: dict[int, tuple[int, int]], main: WrkResult) -> float:
    """A wrk duration long enough to send every batch of ``ranges`` at 2/3 of the timed rate."""
    count = sum(b - a + 1 for a, b in ranges.values())
    return 2.0 + 1.5 * count / max(main.rate, 50.0)


def run_config(
    load: Load, backend: str, workers: int, args: argparse.Namespace, tmp: Path
) -> RunResult:
    devices = load.devices
    tag = f"{backend}-w{workers}"
    with database(backend, tmp, tag) as url:
        reg_s = register(url, devices)
        load.write_index()  # the tokens of this database
        port = free_port()
        cmd, what = cloud_command(url, port, workers)
        env = dict(os.environ, **{DATABASE_URL_ENV: url})
        with server(cmd, env, port, tmp / f"server-{tag}.log") as proc:
            cpu = cpu_seconds(proc.pid)
            main = load.wrk(port, args.duration, args)
            main.server_cpu_s = cpu_seconds(proc.pid) - cpu
            notes = [f"registered {len(devices)} devices in {reg_s:.1f} s"]
            sent = main.sent_by_device
            answered = main.fresh + main.dup + sum(main.statuses.values())
            inflight = main.sent - answered
            after_main = settle(url, main.fresh)
            # Resend each device's tail, as a device resends what was not acknowledged.
            # (wrk runs for its whole -d even when the script stops its threads.)
            tail = {d: (max(1, s - RESEND_TAIL + 1), s) for d, s in sent.items()}
            resend = load.wrk(port, pass_seconds(tail, main), args, ranges=tail)
            after = settle(url, after_main.batches)
            head = {d: (1, min(REPLAY_HEAD, s)) for d, s in sent.items()}
            replay = load.wrk(port, pass_seconds(head, main), args, ranges=head)
            final = settle(url, after.batches)
    notes.append(
        f"resend of each device's last {RESEND_TAIL}: {resend.fresh} stored now, "
        f"{resend.dup:,} duplicate; replay of the first {REPLAY_HEAD}: {replay.dup:,} "
        f"duplicate, {replay.fresh} stored, db {after.batches:,} -> {final.batches:,} rows"
    )
    problems = check(
        devices, main, inflight, after_main, resend, after, replay, final, answered, notes
    )
    notes.insert(
        0,
        f"timed pass: {main.sent:,} sent, {main.fresh:,} stored (200), {main.dup} duplicate, "
        f"{sum(main.statuses.values())} other{' ' + str(main.statuses) if main.statuses else ''}, "
        f"{inflight} cut in "
        f"flight at the stop; db {after_main.batches:,} rows after it",
    )
    notes.extend(problems)
    return RunResult(f"{backend}, {what}", what, main, not problems, notes)


def check(
    devices: list[DeviceBatches],
    main: WrkResult,
    inflight: int,
    after_main: DbCounts,
    resend: WrkResult,
    after: DbCounts,
    replay: WrkResult,
    final: DbCounts,
    answered: int,
    notes: list[str],
) -> list[str]:
    """Counting. A 409 is the load generator's doing, not the server's: a device's next
    batch overtook its previous one (wrk cannot tie a response to a device; with devices
    >> connections that needs one request slower than a whole round of the others). The
    server then stores neither the overtaken batch nor anything for it, which is checked."""
    problems = []
    sent = main.sent_by_device
    resend_409 = resend.statuses.get("409", 0)
    # An overtaken batch still in flight at the stop shows its 409 only when resent.
    refused = main.statuses.get("409", 0) + resend_409
    unexpected = {k: v for k, v in main.statuses.items() if k != "409"}
    expect_rows = sum(sent.values()) - refused
    if main.exhausted:
        problems.append("PROBLEM: pre-generated batches ran out; raise --max-rate")
    if unexpected or main.errors["timeout"]:
        problems.append(f"PROBLEM: timed pass answers {unexpected}, errors {main.errors}")
    if not main.fresh <= after_main.batches <= main.fresh + inflight:
        problems.append(
            f"PROBLEM: after the timed pass the db holds {after_main.batches} rows, "
            f"wrk got 200 for {main.fresh} (+ {inflight} in flight)"
        )
    if after.batches != expect_rows:
        problems.append(
            f"PROBLEM: {after.batches} rows, {sum(sent.values())} (device, sequence) sent"
            f" - {refused} refused (409)"
        )
    last_missing = [
        devices[d].name
        for d, s in sent.items()
        if after.per_device.get(devices[d].name, (0, 0, 0))[2] != s
    ]
    short = [
        devices[d].name
        for d, s in sent.items()
        if after.per_device.get(devices[d].name, (0, 0, 0))[0] != s
    ]
    if last_missing or len(short) > refused:
        problems.append(
            f"PROBLEM: {len(last_missing)} devices miss their last batch, {len(short)} "
            f"devices hold fewer than they sent ({refused} refused): {short[:3]}"
        )
    if refused == 0:
        expect_summaries = sum(sum(devices[d].summaries[:s]) for d, s in sent.items())
        expect_alarms = sum(sum(devices[d].alarms[:s]) for d, s in sent.items())
        if (after.summaries, after.alarm_events) != (expect_summaries, expect_alarms):
            problems.append(
                f"PROBLEM: summaries {after.summaries}/{expect_summaries}, "
                f"alarm events {after.alarm_events}/{expect_alarms}"
            )
    replay_409 = replay.statuses.get("409", 0)
    if (
        replay.fresh
        or set(replay.statuses) - {"409"}
        or replay_409 > refused
        or replay.dup + replay_409 != replay.sent
        or final.batches != after.batches
    ):
        problems.append(
            f"PROBLEM: replay: {replay.dup}/{replay.sent} duplicate, {replay.fresh} stored, "
            f"{replay.statuses}, rows {after.batches} -> {final.batches}"
        )
    if final.counter_batches != final.batches:
        problems.append(f"PROBLEM: devices.batches sums to {final.counter_batches}")
    if (
        set(resend.statuses) - {"409"}
        or resend_409 > inflight
        or resend.fresh + resend.dup + resend_409 != resend.sent
        or resend.fresh > inflight
    ):
        problems.append(f"PROBLEM: resend answers {resend.statuses}, {resend.fresh} stored")
    if not problems:
        what = (
            f"{after.summaries:,} summaries and {after.alarm_events} alarm events as sent"
            if refused == 0
            else f"{refused} batches overtaken by the generator refused (409) and not stored"
        )
        notes.append(
            f"verified: {after.batches:,} rows = {expect_rows:,} (device, sequence) sent and "
            f"accepted, each device's last one stored, {what}; 0 lost, 0 duplicated"
        )
    return problems


def run_bare(load: Load, args: argparse.Namespace, tmp: Path) -> tuple[WrkResult, int]:
    path = tmp / "bare.db"
    port = free_port()
    cmd = [sys.executable, "-m", "uvicorn", "--factory", "cloud_ingest:bare_app"]
    cmd += ["--app-dir", str(BENCH), "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--log-level", "warning", "--no-access-log"]
    env = dict(os.environ, **{BARE_DB_ENV: str(path)})
    with server(cmd, env, port, tmp / "server-bare.log") as proc:
        cpu = cpu_seconds(proc.pid)
        result = load.wrk(port, args.duration, args, wrap=True)
        result.server_cpu_s = cpu_seconds(proc.pid) - cpu
        time.sleep(0.5)
    with contextlib.closing(sqlite3.connect(path)) as conn:
        rows = conn.execute("SELECT count(*) FROM hits").fetchone()[0]
    return result, rows


# --------------------------------------------------------------------------------------
# Bytes on the wire


def wire_bytes(load: Load, url_port: int | None = None) -> list[str]:
    """Per device per day from the generated batches (one device-day's mix), HTTP/1.1
    request and response as the agent's httpx client sends them."""
    from edge_agent import __version__ as agent_version

    bodies = [b for dev in load.devices for b in dev.bodies]
    mean_body = sum(len(b) for b in bodies) / len(bodies)
    raw = [len(gzip.decompress(b)) for b in bodies]
    mean_json = sum(raw) / len(raw)
    token = secrets.token_urlsafe(32)
    headers = {
        "Host": "fleet.example.com",
        "Accept": "*/*",
        "Accept-Encoding": "gzip, deflate",
        "Connection": "keep-alive",
        "User-Agent": f"edgetwin-edge-agent/{agent_version}",
        "Authorization": f"Bearer {token}",
        "Content-Type": "application/json",
        "Content-Encoding": "gzip",
        "Content-Length": "1000",
    }
    request_head = len("POST /v1/batches HTTP/1.1\r\n") + sum(
        len(k) + len(v) + 4 for k, v in headers.items()
    )
    request_head += 2
    ack = json.dumps(
        {
            "sequence": 123456,
            "duplicate": False,
            "desired": {
                "version": 0,
                "model_version": None,
                "alarm_overrides": {},
                "sync_interval_s": None,
            },
        },
        separators=(",", ":"),
    ).encode()
    response_head = len(
        "HTTP/1.1 200 OK\r\ndate: Thu, 01 Jan 2026 00:00:00 GMT\r\nserver: uvicorn\r\n"
        "content-length: 100\r\ncontent-type: application/json\r\n\r\n"
    )
    http = request_head + mean_body + response_head + len(ack)
    # TCP/IP on a kept-alive connection: ~2 segments each way (data + ACK), 52 B each
    # (IPv4 20 + TCP 20 + timestamps 12); TLS 1.3 adds ~22 B per record, one each way.
    tcp_tls = 4 * 52 + 2 * 22
    per_day = BATCHES_PER_DAY * http
    per_day_all = BATCHES_PER_DAY * (http + tcp_tls)
    return [
        f"mean batch: {mean_json:,.0f} B JSON -> {mean_body:,.0f} B gzip body "
        f"({len(bodies):,} batches, 1 in 6 with 4 summaries, every one with the reported state)",
        f"HTTP per batch: request head {request_head} + body {mean_body:,.0f} + response "
        f"{response_head + len(ack)} = {http:,.0f} B",
        f"per device per day ({BATCHES_PER_DAY:,} batches at a 10 s sync): "
        f"{per_day / 1e6:.2f} MB HTTP, ~{per_day_all / 1e6:.2f} MB with TCP/IP + TLS "
        f"records (~{per_day_all * 30 / 1e6:.0f} MB a month)",
    ]


# --------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--duration", type=float, default=15.0, help="seconds per timed pass")
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    parser.add_argument(
        "--max-rate",
        type=float,
        default=1500.0,
        help="batches/s the pre-generated bodies must cover for --duration",
    )
    parser.add_argument("--workers", default="1,2", help="server processes to try, e.g. 1,2")
    parser.add_argument("--backends", default="sqlite,postgresql")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit(
            "wrk not found: install it (Debian/Ubuntu: sudo apt-get install wrk) and re-run"
        )
    if args.devices < 4 * args.connections:
        print(
            f"warning: {args.devices} devices for {args.connections} connections: a device's "
            "next batch may overtake its previous one (409s); use devices >= 4 x connections"
        )
    per_device = math.ceil(args.duration * args.max_rate / args.devices) + RESEND_TAIL
    with tempfile.TemporaryDirectory(prefix="bench-cloud-ingest-") as tmpdir:
        tmp = Path(tmpdir)
        t = time.perf_counter()
        devices = [device_batches(i, per_device) for i in range(args.devices)]
        load = Load(tmp, devices)
        print(
            f"{args.devices:,} devices x {per_device} batches pre-generated in "
            f"{time.perf_counter() - t:.1f} s; wrk -t{args.threads} -c{args.connections} "
            f"-d{args.duration:g}s on 127.0.0.1; {os.cpu_count()} cores shared by wrk, the "
            "server and the database"
        )
        bare, bare_rows = run_bare(load, args, tmp)
        results: list[RunResult] = []
        for backend in args.backends.split(","):
            if backend == "postgresql" and (reason := pg_unavailable()):
                print(f"PostgreSQL skipped ({PG_SERVER}): {reason}")
                continue
            for workers in (int(w) for w in args.workers.split(",")):
                results.append(run_config(load, backend, workers, args, tmp))
        print()
        header = f"{'server':48s} {'req/s':>8s} {'p50 ms':>7s} {'p90 ms':>7s} {'p99 ms':>7s}"
        print(f"{header} {'max ms':>7s} {'CPU ms':>7s} {'x bare':>7s} {'counted':>8s}")
        print(
            f"{'bare FastAPI + 1 SQLite insert (reference)':48s} {bare.rate:8,.0f} "
            f"{bare.p50_ms:7.1f} {bare.p90_ms:7.1f} {bare.p99_ms:7.1f} {bare.max_ms:7.0f} "
            f"{bare.cpu_ms:7.2f} {1:7.2f} {'-':>8s}"
        )
        for r in results:
            m = r.main
            print(
                f"{r.label:48s} {m.rate:8,.0f} {m.p50_ms:7.1f} {m.p90_ms:7.1f} "
                f"{m.p99_ms:7.1f} {m.max_ms:7.0f} {m.cpu_ms:7.2f} {m.rate / bare.rate:7.2f} "
                f"{'ok' if r.ok else 'FAILED':>8s}"
            )
        print()
        print(
            f"bare reference: {bare.requests:,} answered, {bare_rows:,} rows "
            f"(non-2xx {bare.errors['status']}, timeouts {bare.errors['timeout']})"
        )
        for r in results:
            print(f"{r.label}:")
            for note in r.notes:
                print(f"  {note}")
        print()
        for r in results:
            m = r.main
            rate_ok = "met" if m.rate >= 500 else f"missed by {500 - m.rate:,.0f}/s"
            p99_ok = "met" if m.p99_ms <= 100 else f"missed by {m.p99_ms - 100:,.0f} ms"
            print(f"{r.label}: >= 500 batches/s {rate_ok}; p99 <= 100 ms {p99_ok}")
        print()
        for line in wire_bytes(load):
            print(line)


if __name__ == "__main__":
    main()
