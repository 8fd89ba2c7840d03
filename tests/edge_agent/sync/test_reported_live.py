"""Live values (last reading per channel, source counters) alone do not stage a batch
every sync interval: they are refreshed every [sync] reported_live_s, while a change of
state (health, warm-up, model, alarms) goes with the next batch. Real store, real HTTP
fake cloud, simulated clock."""

from __future__ import annotations

import asyncio
import random
from dataclasses import replace
from typing import Any

from edge_agent.store import Store
from edge_agent.sync.twin import DeviceReport, Twin
from edge_agent.sync.worker import SyncWorker

from .fakecloud import FakeCloud
from .helpers import MODEL_VERSION, FakeClock, make_engine, static_report, sync_config


class LiveDevice:
    """A device whose last value moves with every call, like a sensor at 10 Hz."""

    def __init__(self) -> None:
        self.value = 20.0
        self.health: list[str] = []
        self.base = static_report()

    def report(self) -> DeviceReport:
        self.value += 0.01
        channel: dict[str, Any] = {
            "health": list(self.health),
            "last_ts": 1.0e9 + self.value,
            "last_value": self.value,
            "is_warm": True,
            "rejected": {},
            "feed_period_s": 0.1,
        }
        source = {"state": "connected", "last_reading_ts": self.value, "counters": {"lines": 7}}
        return replace(self.base, channels={"temp": channel}, sources={"serial": source})


def run_ticks(worker: SyncWorker, clock: FakeClock, seconds: float) -> None:
    async def go() -> None:
        try:
            end = clock.now + seconds
            while clock.now < end:
                await worker.tick()
                clock.now += 10.0  # the sync interval: what an idle device does
        finally:
            await worker.aclose()

    asyncio.run(go())


def test_live_values_are_refreshed_at_their_interval_and_state_changes_at_once(
    cloud: FakeCloud, store: Store, clock: FakeClock
) -> None:
    device = LiveDevice()
    twin = Twin(store, make_engine(), MODEL_VERSION, device.report)
    twin.restore()
    config = sync_config(cloud.url, interval_s=10.0, reported_live_s=300.0)
    worker = SyncWorker(config, store, twin, clock=clock, rng=random.Random(0))

    run_ticks(worker, clock, 15 * 60)
    batches = cloud.stored_batches()
    # The first batch after start carries the full state, then one refresh per 300 s:
    # about 4 in 15 minutes where every 10 s tick (90) staged one before.
    assert 3 <= len(batches) <= 5, [b.sequence for b in batches]
    assert all(b.reported is not None for b in batches)
    assert cloud.reported is not None
    first_value = cloud.reported.channels["temp"]["last_value"]

    # A health condition appearing goes with the very next tick.
    device.health = ["stale"]
    before = len(cloud.stored_batches())
    run_ticks(worker, clock, 10)
    assert len(cloud.stored_batches()) == before + 1
    assert cloud.reported.channels["temp"]["health"] == ["stale"]
    assert cloud.reported.channels["temp"]["last_value"] > first_value

    # And nothing more until the next live refresh is due.
    run_ticks(worker, clock, 250)
    assert len(cloud.stored_batches()) == before + 1
    run_ticks(worker, clock, 60)
    assert len(cloud.stored_batches()) == before + 2


def test_reported_live_s_is_validated() -> None:
    import pytest
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="reported_live_s"):
        sync_config("http://127.0.0.1:1", reported_live_s=0)
    with pytest.raises(ValidationError, match="reported_live_s"):
        sync_config("http://127.0.0.1:1", reported_live_s="often")
