"""The outbox: alarms first, forgets only what was acknowledged, bounded by dropping the
oldest summaries (counted), never alarms."""

from __future__ import annotations

from pathlib import Path

from edge_agent.store import OutboxKind, Store, StoreConfig
from edgetwin_common.testing import FakeClock

from .conftest import StoreFactory
from .events import raised


def add_summaries(store: Store, n: int, start: float = 0.0) -> None:
    """n closed one-second summaries of channel "temp"."""
    for i in range(n):
        store.add_sample(start + i, "temp", float(i), None, None)
    store.close_open(now=start + n)


def test_pending_lists_alarms_first_then_summaries_oldest_first(make_store: StoreFactory) -> None:
    store = make_store(summary_interval_s=1.0)
    add_summaries(store, 3)
    store.flush()
    store.add_alarm_event(raised(1, 10.0))
    store.add_alarm_event(raised(2, 11.0))
    store.flush()
    add_summaries(store, 2, start=100.0)
    store.flush()
    pending = store.outbox_pending(limit=10)
    assert [r.kind for r in pending] == ["alarm"] * 2 + ["summary"] * 5
    assert [r.data()["alarm"]["id"] for r in pending[:2]] == [1, 2]
    assert [r.data()["start"] for r in pending[2:]] == [0.0, 1.0, 2.0, 100.0, 101.0]
    assert [r.kind for r in store.outbox_pending(limit=3)] == ["alarm", "alarm", "summary"]
    only = store.outbox_pending(limit=10, kinds=(OutboxKind.SUMMARY,))
    assert {r.kind for r in only} == {"summary"}
    assert store.outbox_pending(limit=10) == pending  # reading removes nothing


def test_ack_deletes_only_the_acknowledged_rows(make_store: StoreFactory) -> None:
    store = make_store(summary_interval_s=1.0)
    store.add_alarm_event(raised(1, 10.0))
    add_summaries(store, 4)
    store.flush()
    pending = store.outbox_pending()
    sent = [pending[0].id, pending[2].id]
    assert store.outbox_ack(sent) == 2
    left = store.outbox_pending()
    assert [r.id for r in left] == [r.id for r in pending if r.id not in sent]
    assert store.outbox_ack(sent) == 0  # a repeated ack is harmless
    assert store.outbox_ack([]) == 0
    stats = store.stats()
    assert stats.outbox_rows == {"alarm": 0, "summary": 3}
    assert stats.outbox_acked == 2
    assert stats.outbox_added == {"alarm": 1, "summary": 4}


def test_ids_are_never_reused_after_the_outbox_empties(tmp_path: Path, clock: FakeClock) -> None:
    config = StoreConfig(summary_interval_s=1.0)
    with Store(tmp_path / "s.db", config, clock) as store:
        add_summaries(store, 2)
        store.flush()
        first = [r.id for r in store.outbox_pending()]
        store.outbox_ack(first)
    with Store(tmp_path / "s.db", config, clock) as store:
        add_summaries(store, 2, start=10.0)
        store.flush()
        again = [r.id for r in store.outbox_pending()]
    assert min(again) > max(first)


def test_cap_drops_the_oldest_summaries_never_alarms(make_store: StoreFactory) -> None:
    store = make_store(summary_interval_s=1.0, outbox_max_rows=100)
    add_summaries(store, 60)
    store.add_alarm_event(raised(1, 1.0))
    store.flush()
    add_summaries(store, 60, start=1000.0)
    store.flush()
    pending = store.outbox_pending(limit=1000)
    assert len(pending) == 100
    assert pending[0].kind == "alarm"
    starts = [r.data()["start"] for r in pending[1:]]
    assert starts[0] == 21.0 and starts[-1] == 1059.0  # the 21 oldest summaries went
    stats = store.stats()
    assert stats.outbox_dropped == 21
    assert stats.outbox_rows == {"alarm": 1, "summary": 99}
    # Alarms beyond the cap are kept: first every summary goes, then the cap is exceeded.
    for i in range(2, 151):
        store.add_alarm_event(raised(i, float(i)))
    store.flush()
    kinds = [r.kind for r in store.outbox_pending(limit=1000)]
    assert kinds == ["alarm"] * 150
    assert store.stats().outbox_dropped == 21 + 99
