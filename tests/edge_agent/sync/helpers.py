"""Shared by the sync tests and the kill -9 child: stores with a known outbox, a worker
wired to a real alarm engine, and a settable clock."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from edge_agent.alarms.engine import AlarmEngine
from edge_agent.alarms.model import AlarmEvent
from edge_agent.alarms.rules.registry import AlarmRule
from edge_agent.store import Store, StoreConfig
from edge_agent.sync.config import SyncConfig
from edge_agent.sync.twin import DeviceReport, Twin
from edge_agent.sync.worker import SyncWorker
from edgetwin_common.testing import FakeClock
from edgetwin_contracts.batch import ModelReport

T0 = 1_700_000_000.0
INTERVAL_S = 60.0
MODEL_VERSION = "1.0.0"
TOKEN = "device-token"
CLOCK_START = T0 + 10_000_000
"""Where the tests' clock starts: well after the data's timestamps."""


def fill_summaries(store: Store, n: int, channels: Sequence[str] = ("temp",)) -> None:
    """Queue ``n`` summaries per channel (one sample per interval), flushed."""
    for i in range(n):
        for ch in channels:
            store.add_sample(T0 + i * INTERVAL_S, ch, 20.0 + i, None, None)
    store.close_open(T0 + (n + 1) * INTERVAL_S)
    store.flush()


def add_events(store: Store, events: Sequence[AlarmEvent]) -> None:
    for event in events:
        store.add_alarm_event(event)
    store.flush()


def open_store(path: Path, **overrides: Any) -> Store:
    return Store(path, StoreConfig(summary_interval_s=INTERVAL_S, **overrides))


def sync_config(url: str, **overrides: Any) -> SyncConfig:
    values: dict[str, Any] = {
        "enabled": True,
        "url": url,
        "token": TOKEN,
        "interval_s": 10.0,
        "timeout_s": 5.0,
        "backoff": {"initial_s": 1.0, "max_s": 60.0},
    }
    values.update(overrides)
    return SyncConfig.model_validate(values)


def static_report() -> DeviceReport:
    return DeviceReport(
        agent_version="test",
        model=ModelReport(name="default", version=MODEL_VERSION, sha256="0" * 64),
        config_hash="c" * 64,
    )


def make_engine(
    rules: Sequence[AlarmRule] = (), sink: Callable[[AlarmEvent], None] = lambda event: None
) -> AlarmEngine:
    from edge_agent.actions.log import LogAction, LogActionConfig

    log_action = LogAction(LogActionConfig(type="log", name="log"))
    return AlarmEngine(rules, [1, 2, 4], sink=sink, actions={"log": log_action})


def make_worker(
    store: Store,
    url: str,
    clock: FakeClock,
    engine: AlarmEngine | None = None,
    seed: int = 0,
    **overrides: Any,
) -> tuple[SyncWorker, Twin]:
    twin = Twin(store, engine or make_engine(), MODEL_VERSION, static_report)
    twin.restore()
    worker = SyncWorker(
        sync_config(url, **overrides), store, twin, clock=clock, rng=random.Random(seed)
    )
    return worker, twin


async def drain(worker: SyncWorker, clock: FakeClock, max_ticks: int = 500) -> int:
    """Tick, moving the clock by what each tick asks, until the outbox is empty and no
    batch is in flight; returns the ticks taken."""
    store = worker._store
    for n in range(1, max_ticks + 1):
        delay = await worker.tick()
        clock.now += delay
        if not any(store.stats().outbox_rows.values()) and store.sync_inflight() is None:
            return n
    raise AssertionError(f"not drained after {max_ticks} ticks: {worker.status()}")
