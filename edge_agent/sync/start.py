"""The agent's cloud side at start: the device shadow and the sync worker, when [sync]
is enabled (docs/sync.md)."""

from __future__ import annotations

import time
from collections.abc import Callable

from edge_agent.alarms.engine import AlarmEngine
from edge_agent.store.sqlite import Store
from edge_agent.sync.config import SyncConfig
from edge_agent.sync.twin import DeviceReport, ModelUpdater, Twin, TwinUpdater
from edge_agent.sync.worker import SyncWorker


def start_sync(
    config: SyncConfig,
    store: Store,
    engine: AlarmEngine,
    model_version: str,
    describe: Callable[[], DeviceReport],
    *,
    ota: ModelUpdater | None,
    twins: TwinUpdater | None,
    clock: Callable[[], float] = time.time,
) -> tuple[Twin | None, SyncWorker | None]:
    """The shadow (restored from the store) and the worker; (None, None) without [sync]."""
    if not config.enabled:
        return None, None
    twin = Twin(store, engine, model_version, describe, ota=ota, twins=twins)
    # Before the first sample: a restart offline keeps the cloud's alarm overrides.
    twin.restore()
    return twin, SyncWorker(config, store, twin, clock=clock)
