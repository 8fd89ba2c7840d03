"""Fixtures for the cloud service: one real database per backend, an app, live servers.

``db_url`` is parametrized over SQLite (a file in tmp_path) and PostgreSQL (a database
``cloudsync_test_<random>`` created on 127.0.0.1:5432 for the session and dropped at its
end). Without a PostgreSQL server the postgresql cases skip with the reason printed;
under CI=true they fail instead (tests.conftest.require).
"""

from __future__ import annotations

import gzip
import json
import os
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import psycopg
import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import Engine, func, select, text

from cloud_sync.config import AuthSection, CloudConfig, DatabaseSection
from cloud_sync.db.models import Device, StoredAlarm, StoredAlarmEvent, StoredBatch, StoredSummary
from cloud_sync.db.session import make_engine, upgrade
from cloud_sync.http.app import create_app
from cloud_sync.registry import add_device
from tests.conftest import require

PG_SERVER = os.environ.get(
    "CLOUD_SYNC_TEST_PG", "host=127.0.0.1 port=5432 user=postgres dbname=test"
)
"""libpq conninfo of the server the PostgreSQL tests create their databases on."""
ADMIN_TOKEN = "admin-token-for-tests-0123456789"
TABLES = (
    "summaries",
    "alarm_events",
    "alarms",
    "batches",
    "devices",
    "releases",
    "release_bundles",
    "notifications",
    "notification_deliveries",
)


def _pg_unavailable() -> str | None:
    try:
        with psycopg.connect(PG_SERVER, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        return f"PostgreSQL ({PG_SERVER}) does not answer: {str(exc).strip()}"
    return None


def _sqlalchemy_url(dbname: str) -> str:
    info = psycopg.conninfo.conninfo_to_dict(PG_SERVER)
    user = info.get("user", "postgres")
    host = info.get("host", "127.0.0.1")
    port = info.get("port", 5432)
    return f"postgresql+psycopg://{user}@{host}:{port}/{dbname}"


@contextmanager
def fresh_pg_database() -> Iterator[str]:
    """A new, empty PostgreSQL database (dropped afterwards); skips/fails without a server."""
    reason = _pg_unavailable()
    require(reason is None, reason or "")
    name = f"cloudsync_test_{secrets.token_hex(6)}"
    with psycopg.connect(PG_SERVER, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield _sqlalchemy_url(name)
    finally:
        with psycopg.connect(PG_SERVER, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """One migrated PostgreSQL database for the session; each test empties it."""
    with fresh_pg_database() as url:
        engine = make_engine(url)
        upgrade(engine)
        engine.dispose()
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Any) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'cloud.db'}"
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = make_engine(db_url)
    upgrade(engine)
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.execute(text(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE"))
    yield engine
    engine.dispose()


@pytest.fixture
def config(db_url: str) -> CloudConfig:
    return CloudConfig(
        database=DatabaseSection(url=db_url),
        auth=AuthSection(admin_token=SecretStr(ADMIN_TOKEN)),
    )


@pytest.fixture
def app(config: CloudConfig, engine: Engine) -> FastAPI:
    return create_app(config, engine)


@pytest.fixture
def tokens(engine: Engine) -> dict[str, str]:
    """Two devices, pump-1 and pump-2, and their tokens."""
    return {name: add_device(engine, name) for name in ("pump-1", "pump-2")}


@contextmanager
def live_server(app: FastAPI) -> Iterator[str]:
    """A real uvicorn on 127.0.0.1 (a free port) in a thread; yields its base URL."""
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture
def client(app: FastAPI) -> Iterator[httpx.Client]:
    """In-process (ASGI) client."""
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture(params=["asgi", "uvicorn"])
def api(request: pytest.FixtureRequest, app: FastAPI) -> Iterator[httpx.Client]:
    """The API in process and through a real uvicorn on 127.0.0.1."""
    if request.param == "asgi":
        with TestClient(app) as test_client:
            yield test_client
        return
    with live_server(app) as url, httpx.Client(base_url=url, timeout=30) as http:
        yield http


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


ADMIN = bearer(ADMIN_TOKEN)


def summary(channel: str = "pressure", start: float | None = None, **fields: Any) -> dict[str, Any]:
    start = time.time() - 120 if start is None else start
    record = {
        "channel": channel,
        "start": start,
        "end": start + 60,
        "interval_s": 60.0,
        "count": 60,
        "min": 1.0,
        "max": 3.0,
        "mean": 2.0,
        "std": 0.5,
        "last": 2.5,
        "last_ts": start + 59,
    }
    return {**record, **fields}


def alarm_event(alarm_id: int = 1, kind: str = "raised", ts: float | None = None) -> dict[str, Any]:
    ts = time.time() - 30 if ts is None else ts
    state = {"raised": "active_unacknowledged", "acknowledged": "active_acknowledged"}.get(
        kind, "cleared"
    )
    return {
        "kind": kind,
        "ts": ts,
        "alarm": {
            "id": alarm_id,
            "rule": "pressure_high",
            "channel": "pressure",
            "kind": "value_above",
            "severity": "warning",
            "state": state,
            "raised_at": ts - 1,
            "value": 9.5,
            "message": "pressure above 9 bar",
            "cleared_at": ts if kind == "cleared" else None,
        },
    }


def reported(version: int, desired_applied: int = 0, **fields: Any) -> dict[str, Any]:
    return {
        "version": version,
        "agent_version": "0.1.0",
        "model": {"name": "generic", "version": "1.0.0", "sha256": "ab" * 32},
        "config_hash": "cafe",
        "sources": {"serial0": {"state": "connected"}},
        "channels": {"pressure": {"health": []}},
        "desired_version_applied": desired_applied,
        **fields,
    }


def batch(sequence: int, **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "sequence": sequence,
        "created_at": time.time(),
        "alarms": [alarm_event()],
        "summaries": [summary(), summary(channel="flow")],
    }
    body.update(fields)
    return body


def post_batch(
    http: httpx.Client,
    token: str,
    body: dict[str, Any] | bytes,
    compress: bool = True,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    sent = {**bearer(token), "Content-Type": "application/json", **(headers or {})}
    if compress:
        data = gzip.compress(data)
        sent.setdefault("Content-Encoding", "gzip")
    return http.post("/v1/batches", content=data, headers=sent)


Counts = dict[str, int]


def stored(engine: Engine) -> Counts:
    """Rows per table (and the summed reported versions): to prove nothing was stored."""
    with engine.connect() as conn:
        counts = {
            "batches": conn.execute(select(func.count()).select_from(StoredBatch)).scalar_one(),
            "summaries": conn.execute(select(func.count()).select_from(StoredSummary)).scalar_one(),
            "alarm_events": conn.execute(
                select(func.count()).select_from(StoredAlarmEvent)
            ).scalar_one(),
            "alarms": conn.execute(select(func.count()).select_from(StoredAlarm)).scalar_one(),
            "last_sequence": conn.execute(select(func.sum(Device.last_sequence))).scalar() or 0,
            "reported": conn.execute(
                select(func.count()).where(Device.reported_version.is_not(None))
            ).scalar_one(),
        }
    return counts


Poster = Callable[..., httpx.Response]
