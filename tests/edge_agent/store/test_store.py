"""Store round trips on real files: readings, summaries, alarms, restart, failures."""

from __future__ import annotations

import math
import sqlite3
import threading
from pathlib import Path

import pytest

from edge_agent.alarms.model import AlarmEventKind, AlarmState
from edge_agent.errors import AlarmNotFound
from edge_agent.store import Store, StoreConfig
from edge_agent.store.errors import StoreUnavailable
from edgetwin_common.testing import FakeClock

from .conftest import StoreFactory
from .events import acked, cleared, raised


def test_file_is_created_in_wal_with_incremental_vacuum(make_store: StoreFactory) -> None:
    store = make_store()
    assert store.path.parent.is_dir()
    conn = sqlite3.connect(store.path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA auto_vacuum").fetchone()[0] == 2  # incremental
    finally:
        conn.close()


def test_readings_round_trip(make_store: StoreFactory) -> None:
    store = make_store()
    store.add_sample(100.0, "temp", 20.5, None, None)
    store.add_sample(101.0, "temp", 21.0, 20.75, 0.5)
    store.add_sample(101.0, "current", 3.0, 2.9, 1.25)
    assert store.readings("temp") == []  # buffered, not yet written
    assert store.stats().pending_rows == 3
    assert store.flush() == 3
    rows = store.readings("temp")
    assert [(r.ts, r.value, r.forecast, r.score) for r in rows] == [
        (100.0, 20.5, None, None),
        (101.0, 21.0, 20.75, 0.5),
    ]
    assert [r.channel for r in store.readings("current")] == ["current"]
    assert store.readings("unknown") == []
    assert store.flush() == 0
    stats = store.stats()
    assert (stats.reading_rows, stats.pending_rows, stats.flushes) == (3, 0, 1)


def test_readings_since_and_limit_return_the_newest_oldest_first(
    make_store: StoreFactory,
) -> None:
    store = make_store()
    for i in range(10):
        store.add_sample(1000.0 + i, "temp", float(i), None, None)
    store.flush()
    assert [r.value for r in store.readings("temp", limit=3)] == [7.0, 8.0, 9.0]
    assert [r.value for r in store.readings("temp", since=1008.0)] == [8.0, 9.0]
    with pytest.raises(ValueError):
        store.readings("temp", limit=0)


def test_readings_of_every_channel_newest_limit_oldest_first(make_store: StoreFactory) -> None:
    store = make_store()
    for i in range(6):
        store.add_sample(1000.0 + i, "temp", float(i), None, None)
        store.add_sample(1000.0 + i, "current", 10.0 + i, None, None)
    store.flush()
    rows = store.readings(None, limit=4)
    assert [(r.ts, r.channel) for r in rows] == [
        (1004.0, "current"),
        (1004.0, "temp"),
        (1005.0, "current"),
        (1005.0, "temp"),
    ]
    assert len(store.readings(None, since=1003.0)) == 6


def test_non_finite_samples_are_rejected_and_counted(make_store: StoreFactory) -> None:
    store = make_store()
    store.add_sample(1.0, "temp", math.nan, None, None)
    store.add_sample(math.inf, "temp", 1.0, None, None)
    store.add_sample(2.0, "temp", 1.0, math.nan, math.nan)  # NaN forecast/score: stored as None
    store.flush()
    assert store.stats().samples_rejected == 2
    [row] = store.readings("temp")
    assert (row.value, row.forecast, row.score) == (1.0, None, None)


def test_summaries_are_written_with_their_outbox_rows(make_store: StoreFactory) -> None:
    store = make_store(summary_interval_s=10.0)
    for i in range(25):
        store.add_sample(1000.0 + i, "temp", float(i), float(i) - 1.0, 0.1 * i)
    written = store.flush()
    assert written == 25 + 2  # two closed intervals: [1000, 1010) and [1010, 1020)
    first, second = store.summaries("temp")
    assert (first.start, first.count, first.mean, first.error_mae) == (1000.0, 10, 4.5, 1.0)
    assert second.start == 1010.0
    pending = store.outbox_pending(10)
    assert [r.kind for r in pending] == ["summary", "summary"]
    assert pending[0].data()["start"] == 1000.0 and pending[0].data()["count"] == 10
    assert store.close_open(now=1025.0) == 0  # [1020, 1030) has not ended
    assert store.close_open(now=1030.0) == 1
    store.flush()
    assert [s.start for s in store.summaries()] == [1000.0, 1010.0, 1020.0]
    assert [s.start for s in store.summaries(since=1010.0, limit=1)] == [1020.0]


def test_an_interval_closed_at_shutdown_merges_after_restart(
    tmp_path: Path, clock: FakeClock
) -> None:
    config = StoreConfig(summary_interval_s=60.0)
    with Store(tmp_path / "s.db", config, clock) as store:
        for i in range(10):
            store.add_sample(120.0 + i, "temp", float(i), None, None)
    # close() emitted the partial [120, 180) summary
    with Store(tmp_path / "s.db", config, clock) as store:
        assert store.summaries("temp")[0].count == 10
        for i in range(10, 20):
            store.add_sample(120.0 + i, "temp", float(i), None, None)
        store.close_open(now=180.0)
        store.flush()
        [merged] = store.summaries("temp")
        assert (merged.count, merged.mean, merged.last) == (20, 9.5, 19.0)
        assert merged.std == pytest.approx(math.sqrt((20**2 - 1) / 12))
        # The cloud gets both; the later payload for (channel, start) supersedes.
        assert [r.data()["count"] for r in store.outbox_pending()] == [10, 20]


def test_alarms_current_state_history_and_outbox(make_store: StoreFactory) -> None:
    store = make_store()
    first = raised(1, 100.0)
    store.add_alarm_event(first)
    assert store.is_flush_due
    store.flush()
    assert store.alarm(1).state is AlarmState.ACTIVE_UNACKNOWLEDGED
    ack = acked(first, 110.0, by="ana")
    store.add_alarm_event(ack)
    store.add_alarm_event(cleared(ack, 120.0))
    store.add_alarm_event(raised(2, 130.0, channel="current"))
    store.flush()
    one = store.alarm(1)
    assert (one.state, one.acked_by, one.acked_at, one.cleared_at) == (
        AlarmState.CLEARED,
        "ana",
        110.0,
        120.0,
    )
    assert [a.id for a in store.alarms()] == [2, 1]
    assert [a.id for a in store.alarms(active_only=True)] == [2]
    assert [e.kind for e in store.alarm_events(1)] == [
        AlarmEventKind.RAISED,
        AlarmEventKind.ACKNOWLEDGED,
        AlarmEventKind.CLEARED,
    ]
    assert store.alarm_events(1)[1].alarm.acked_by == "ana"
    outbox = store.outbox_pending()
    assert [r.kind for r in outbox] == ["alarm"] * 4
    assert [r.data()["kind"] for r in outbox] == ["raised", "acknowledged", "cleared", "raised"]
    assert store.max_alarm_id() == 2
    with pytest.raises(AlarmNotFound):
        store.alarm(99)


def test_restart_restores_open_alarms(tmp_path: Path, clock: FakeClock) -> None:
    config = StoreConfig()
    with Store(tmp_path / "s.db", config, clock) as store:
        a1, a2, a3 = raised(1, 10.0), raised(2, 11.0), raised(3, 12.0)
        for event in (a1, a2, a3, acked(a2, 13.0), cleared(a3, 14.0)):
            store.add_alarm_event(event)
        store.flush()
    with Store(tmp_path / "s.db", config, clock) as store:
        reopened = store.open_alarms()
        assert [(a.id, a.state) for a in reopened] == [
            (1, AlarmState.ACTIVE_UNACKNOWLEDGED),
            (2, AlarmState.ACTIVE_ACKNOWLEDGED),
        ]
        assert reopened[0] == a1.alarm
        assert store.max_alarm_id() == 3


def test_a_failed_flush_keeps_everything_buffered(make_store: StoreFactory) -> None:
    store = make_store(summary_interval_s=10.0)
    for i in range(15):
        store.add_sample(float(i), "temp", float(i), None, None)
    store.add_alarm_event(raised(1, 5.0))
    store._db.conn.execute("PRAGMA query_only = ON")  # every write now fails, like a full disk
    with pytest.raises(StoreUnavailable):
        store.flush()
    stats = store.stats()
    assert (stats.pending_rows, stats.pending_summaries, stats.pending_alarm_events) == (15, 1, 1)
    assert stats.flush_failures == 1
    store.add_sample(15.0, "temp", 15.0, None, None)
    store._db.conn.execute("PRAGMA query_only = OFF")
    assert store.flush() == 16 + 1 + 1
    assert [r.value for r in store.readings("temp")] == [float(i) for i in range(16)]
    assert store.alarm(1).id == 1
    assert store.stats().reading_rows == 16


def test_the_buffer_is_bounded_while_flushes_fail(make_store: StoreFactory) -> None:
    store = make_store(flush_max_rows=10, buffer_max_rows=100)
    store._db.conn.execute("PRAGMA query_only = ON")
    for i in range(250):
        store.add_sample(float(i), "temp", float(i), None, None)
    with pytest.raises(StoreUnavailable):
        store.flush()
    stats = store.stats()
    assert stats.pending_rows <= 100
    assert stats.samples_dropped == 250 - stats.pending_rows
    store._db.conn.execute("PRAGMA query_only = OFF")
    store.flush()
    values = [r.value for r in store.readings("temp", limit=1000)]
    assert values[-1] == 249.0 and values == sorted(values)  # the oldest were dropped


def test_flush_in_a_thread_while_samples_keep_coming(make_store: StoreFactory) -> None:
    store = make_store()
    stop = threading.Event()

    def flusher() -> None:
        while not stop.is_set():
            store.flush()

    thread = threading.Thread(target=flusher)
    thread.start()
    try:
        for i in range(20_000):
            store.add_sample(float(i), "temp", float(i), None, None)
            if i % 5000 == 0:
                store.readings("temp", limit=5)  # a query from this thread meanwhile
    finally:
        stop.set()
        thread.join()
    store.flush()
    assert store.stats().reading_rows == 20_000
    values = [r.value for r in store.readings("temp", limit=20_000)]
    assert values == [float(i) for i in range(20_000)]


def test_close_flushes_and_is_idempotent(tmp_path: Path, clock: FakeClock) -> None:
    store = Store(tmp_path / "s.db", StoreConfig(), clock)
    store.add_sample(1.0, "temp", 1.0, None, None)
    store.close()
    store.close()
    with Store(tmp_path / "s.db", StoreConfig(), clock) as again:
        assert len(again.readings("temp")) == 1
        assert len(again.summaries("temp")) == 1


def test_stats_to_dict_is_flat(make_store: StoreFactory) -> None:
    store = make_store()
    store.add_alarm_event(raised(1, 1.0))
    store.flush()
    data = store.stats().to_dict()
    assert data["outbox_rows_alarm"] == 1 and data["outbox_rows_summary"] == 0
    assert data["flushes"] == 1
    assert all(not isinstance(v, dict) for v in data.values())


def test_flush_is_due_after_flush_max_rows(make_store: StoreFactory) -> None:
    store = make_store(flush_max_rows=3)
    for i in range(2):
        store.add_sample(float(i), "temp", 1.0, None, None)
    assert not store.is_flush_due
    store.add_sample(2.0, "temp", 1.0, None, None)
    assert store.is_flush_due
    store.flush()
    assert not store.is_flush_due


def test_a_flush_failing_half_way_writes_nothing(make_store: StoreFactory) -> None:
    """Readings, summaries, alarm rows and outbox rows commit together or not at all."""
    store = make_store(summary_interval_s=10.0)
    for i in range(25):
        store.add_sample(float(i), "temp", float(i), None, None)
    store.add_alarm_event(raised(1, 5.0))
    # Fails the flush after the readings and summaries are already inserted.
    store._db.conn.execute(
        "CREATE TEMP TRIGGER fail_events BEFORE INSERT ON alarm_events"
        " BEGIN SELECT RAISE(ABORT, 'disk trouble'); END"
    )
    with pytest.raises(StoreUnavailable, match="disk trouble"):
        store.flush()
    conn = store._db.conn
    for table in ("reading_blocks", "summaries", "alarms", "alarm_events", "outbox", "channels"):
        assert conn.execute(f"SELECT count(*) FROM {table}").fetchone() == (0,), table
    conn.execute("DROP TRIGGER fail_events")
    assert store.flush() == 25 + 2 + 1
    assert len(store.readings("temp")) == 25
    assert [r.kind for r in store.outbox_pending()] == ["alarm", "summary", "summary"]


def test_a_changed_summary_interval_replaces_rather_than_merges(
    tmp_path: Path, clock: FakeClock
) -> None:
    with Store(tmp_path / "s.db", StoreConfig(summary_interval_s=60.0), clock) as store:
        store.add_sample(0.0, "temp", 1.0, None, None)
    with Store(tmp_path / "s.db", StoreConfig(summary_interval_s=30.0), clock) as store:
        store.add_sample(1.0, "temp", 2.0, None, None)
        store.close_open(now=30.0)
        store.flush()
        [only] = store.summaries("temp")
        assert (only.interval_s, only.count) == (30.0, 1)
