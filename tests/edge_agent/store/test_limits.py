"""Limits: readings by age (relative to the newest reading) and everything by size."""

from __future__ import annotations

import random

import pytest

from edge_agent.store import retention
from edge_agent.store.retention import SIZE_HIGH_WATER
from edgetwin_common.testing import FakeClock

from .conftest import StoreFactory
from .events import acked, cleared, raised


def test_age_is_measured_from_the_newest_reading_not_the_clock(
    make_store: StoreFactory, clock: FakeClock
) -> None:
    clock.now = 2e9  # years after the data: a replay, or a clock that jumped
    store = make_store(readings_max_age_s=100.0)
    for i in range(300):
        store.add_sample(1000.0 + i, "temp", float(i), None, None)
        store.add_sample(1000.0 + i / 2, "current", float(i), None, None)
    store.flush()
    deleted = store.enforce_limits()
    # newest reading: ts 1299; cut-off 1199, the same for every channel
    assert deleted["readings_age"] == 199 + 300
    assert store.readings("temp", limit=1000)[0].ts == 1199.0
    assert store.readings("current") == []
    assert store.stats().reading_rows == 101
    assert store.enforce_limits()["readings_age"] == 0


def test_old_summaries_and_old_cleared_alarms_go_active_alarms_stay(
    make_store: StoreFactory,
) -> None:
    store = make_store(summary_interval_s=10.0, summaries_max_age_s=500.0, alarms_max_age_s=500.0)
    for i in range(1000):
        store.add_sample(float(i), "temp", float(i), None, None)
    old = raised(1, 10.0)
    store.add_alarm_event(old)
    store.add_alarm_event(cleared(acked(old, 20.0), 30.0))
    store.add_alarm_event(raised(2, 40.0))  # active: never deleted
    recent = raised(3, 900.0)
    store.add_alarm_event(cleared(recent, 950.0))
    store.flush()
    deleted = store.enforce_limits()
    # newest data: the reading at 999 ([990, 1000) is still open): cut-off 499
    assert deleted["summaries_age"] == 50  # starts 0, 10, ..., 490
    assert store.summaries(limit=1000)[0].start == 500.0
    assert deleted["alarms_age"] == 1
    assert [a.id for a in store.alarms()] == [3, 2]
    assert store.alarm_events(1) == []
    assert store.max_alarm_id() == 3


def test_size_cap_keeps_the_files_under_it_and_the_newest_readings(
    make_store: StoreFactory,
) -> None:
    cap = 1 << 20
    store = make_store(max_bytes=cap, readings_max_age_s=1e9, summary_interval_s=3600.0)
    noise = random.Random(0)
    ts = 0.0
    for _ in range(8):  # ~2 MiB of readings (noise compresses little), past the cap
        for _ in range(5000):
            value = noise.random()
            store.add_sample(ts, "vibration", value, value - 0.1, noise.random())
            ts += 1.0
        store.flush()
    store.add_alarm_event(raised(1, 5.0))
    store.flush()
    assert store.stats().file_bytes > cap
    deleted = store.enforce_limits()
    stats = store.stats()
    assert stats.file_bytes <= cap * SIZE_HIGH_WATER
    assert deleted["readings_size"] > 0
    assert stats.readings_deleted_size == deleted["readings_size"]
    assert stats.reading_rows == 40_000 - deleted["readings_size"]
    newest = store.readings("vibration", limit=stats.reading_rows)
    assert newest[-1].ts == ts - 1.0  # the newest kept ...
    assert newest[0].ts == deleted["readings_size"]  # ... the oldest went, in order
    assert len(newest) == stats.reading_rows
    assert store.alarm(1).id == 1  # alarms are never deleted for size
    # keeps working, and stays under the cap as writing continues
    for _ in range(4):
        for _ in range(5000):
            store.add_sample(ts, "vibration", 1.0, None, None)
            ts += 1.0
        store.flush()
        store.enforce_limits()
        assert store.stats().file_bytes <= cap


def test_size_cap_falls_back_to_summaries_when_readings_are_gone(
    make_store: StoreFactory,
) -> None:
    cap = 1 << 20
    store = make_store(max_bytes=cap, summary_interval_s=1.0, outbox_max_rows=100)
    for i in range(20_000):  # 20k summaries, ~2.5 MiB
        store.add_sample(float(i), "temp", float(i), None, None)
    store.flush()
    store._db.conn.execute("DELETE FROM reading_blocks")  # as if the readings had aged out
    store._retention.reading_rows = 0
    deleted = store.enforce_limits()
    assert deleted["summaries_size"] > 0
    assert store.stats().file_bytes <= cap
    assert store.summaries(limit=1)[0].start == 19_998.0  # the newest kept


def test_a_large_age_backlog_is_deleted_in_chunks(
    make_store: StoreFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(retention, "DELETE_CHUNK_BLOCKS", 10)
    store = make_store(readings_max_age_s=10.0)
    for i in range(1050):
        store.add_sample(float(i), "temp", float(i), None, None)
        if i % 10 == 9:
            store.flush()  # a block per 10 readings: 105 blocks, deleted 10 at a time
    store.flush()
    assert store.enforce_limits()["readings_age"] == 1039
    assert store.readings("temp")[0].ts == 1039.0
    assert store.stats().reading_rows == 11
