"""The sync worker against a real HTTP server (the fake cloud on 127.0.0.1), with a real
SQLite store and a real alarm engine. Time is a FakeClock moved by what each tick asks
for, so backoff is asserted as attempts per simulated minute, not wall time."""

from __future__ import annotations

import asyncio
import gzip
import logging
import re
import time
from pathlib import Path

import pytest

from edge_agent.alarms.rules.health import HealthRule
from edge_agent.alarms.rules.value import ValueRule
from edge_agent.store import Store
from edge_agent.store.meta import SEQUENCE_KEY
from edge_agent.sync.twin import OTA_REFUSAL
from edge_agent.sync.worker import SyncState
from edgetwin_contracts.batch import (
    MAX_BATCH_BYTES,
    AlarmOverride,
    Batch,
    DesiredState,
    RefusedChange,
)
from tests.edge_agent.store.events import raised

from .fakecloud import FakeCloud, Fault
from .helpers import (
    MODEL_VERSION,
    FakeClock,
    add_events,
    drain,
    fill_summaries,
    make_engine,
    make_worker,
    open_store,
)


def expected_summaries(n: int, channels: tuple[str, ...] = ("temp",)) -> set[tuple[str, float]]:
    return {
        (ch, 1_700_000_000.0 - 1_700_000_000.0 % 60 + i * 60) for i in range(n) for ch in channels
    }


def kinds_in_order(cloud: FakeCloud) -> str:
    return "".join("a" * len(b.alarms) + "s" * len(b.summaries) for b in cloud.stored_batches())


def assert_exactly_once(cloud: FakeCloud, n: int, channels: tuple[str, ...] = ("temp",)) -> None:
    stored = cloud.stored_summaries()
    assert len(stored) == len(set(stored)), "a summary was stored twice"
    assert set(stored) == expected_summaries(n, channels)


def test_alarms_go_first_and_every_batch_is_size_bounded(
    cloud: FakeCloud, store: Store, clock: FakeClock
) -> None:
    channels = ("temp", "pressure", "flow")
    fill_summaries(store, 100, channels)
    add_events(store, [raised(i, 1_700_000_000.0 + i) for i in range(1, 41)])  # queued last
    worker, _ = make_worker(store, cloud.url, clock, max_batch_bytes=16_384)

    asyncio.run(drain(worker, clock))

    assert re.fullmatch("a{40}s{300}", kinds_in_order(cloud)), "alarms must precede summaries"
    assert [a for a, _, _ in cloud.stored_alarm_events()] == list(range(1, 41))
    assert_exactly_once(cloud, 100, channels)
    assert len(cloud.stored) >= 5
    for body in cloud.bodies.values():
        assert len(body) <= MAX_BATCH_BYTES
        assert len(gzip.decompress(body)) <= 16_384
    assert store.stats().outbox_rows == {"alarm": 0, "summary": 0}
    assert cloud.stored[1].reported is not None, "the first batch carries the reported state"


def test_alarms_beyond_one_batch_go_in_alarm_only_batches(
    cloud: FakeCloud, store: Store, clock: FakeClock
) -> None:
    fill_summaries(store, 50)
    add_events(store, [raised(i, 1_700_000_000.0 + i) for i in range(1, 201)])
    worker, _ = make_worker(store, cloud.url, clock, max_batch_bytes=8192)

    asyncio.run(drain(worker, clock))

    batches = cloud.stored_batches()
    assert sum(1 for b in batches if b.alarms and not b.summaries) >= 5
    assert re.fullmatch("a{200}s{50}", kinds_in_order(cloud))
    assert_exactly_once(cloud, 50)


def test_rows_are_deleted_only_after_the_acknowledgement(
    cloud: FakeCloud, store: Store, clock: FakeClock
) -> None:
    fill_summaries(store, 10)
    worker, _ = make_worker(store, cloud.url, clock)
    cloud.hold(1, after_store=True)

    async def scenario() -> None:
        sending = asyncio.create_task(worker.tick())
        assert await asyncio.to_thread(cloud.held.wait, 10)
        # The cloud has stored batch 1, the device has no answer yet: nothing forgotten.
        assert 1 in cloud.stored
        assert store.stats().outbox_rows["summary"] == 10
        inflight = store.sync_inflight()
        assert inflight is not None and inflight.sequence == 1
        assert len(inflight.row_ids) == 10
        assert worker.status().state == "sending"
        cloud.release()
        await sending
        assert store.stats().outbox_rows["summary"] == 0
        assert store.sync_inflight() is None
        assert store.meta_int("sync_acked_sequence") == 1

    asyncio.run(scenario())


@pytest.mark.parametrize("fault", [Fault.UNAVAILABLE, Fault.DROP])
def test_cloud_down_backs_off_then_delivers(
    cloud: FakeCloud,
    store: Store,
    clock: FakeClock,
    fault: Fault,
    caplog: pytest.LogCaptureFixture,
) -> None:
    fill_summaries(store, 20)
    worker, _ = make_worker(store, cloud.url, clock, backoff={"initial_s": 1.0, "max_s": 60.0})
    cloud.fail(fault)

    async def scenario() -> None:
        delays = []
        with caplog.at_level(logging.WARNING, logger="edge_agent.sync"):
            for _ in range(600):  # 600 simulated seconds, a tick a second
                delays.append(await worker.tick())
                clock.now += 1.0
        # Exponential backoff with jitter (1, 2, 4 ... 60 s, each x[0.5, 1]): ~6 attempts
        # in the first minute, then one per 30-60 s. A fixed 10 s retry would make 60,
        # a tight loop 600.
        attempts = cloud.faulted
        assert 8 <= attempts <= 26, attempts
        assert worker.attempts == attempts
        assert max(delays) <= 60.0
        assert worker.state is SyncState.BACKING_OFF
        status = worker.status()
        assert status.state == "backing_off" and status.last_error
        # A store that never sent asks the cloud for its last sequence before staging.
        assert status.backlog["summary"] == 20 and status.in_flight is None
        assert status.consecutive_failures == attempts
        warnings = [r for r in caplog.records if "backing off" in r.getMessage()]
        assert len(warnings) == 1, "a state change is logged once"

        cloud.fail(Fault.NONE)
        clock.now += 60.0
        await drain(worker, clock)
        assert worker.state is SyncState.IDLE
        assert worker.status().last_success_ts == clock.now or worker.last_success_ts

    asyncio.run(scenario())
    assert_exactly_once(cloud, 20)
    # The staged batch was resent as it was: one sequence, same bytes.
    assert cloud.mismatched_resends == 0
    # After the reconnect the next batch carries the whole reported state.
    assert all(b.reported is not None for b in cloud.stored_batches())


def test_a_lost_answer_is_resent_and_deduplicated(
    cloud: FakeCloud, store: Store, clock: FakeClock
) -> None:
    fill_summaries(store, 30)
    worker, _ = make_worker(store, cloud.url, clock, max_batch_bytes=4096)
    cloud.fail(Fault.DROP_AFTER, times=1, path="/v1/batches")  # stored, answer lost

    asyncio.run(drain(worker, clock))

    assert cloud.duplicates() == [1]
    assert cloud.mismatched_resends == 0
    assert worker.duplicates == 1
    assert_exactly_once(cloud, 30)


def test_a_refused_token_is_logged_once_and_retried_slowly(
    cloud: FakeCloud, store: Store, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    fill_summaries(store, 5)
    cloud.token = "rotated"
    worker, _ = make_worker(store, cloud.url, clock, backoff={"max_s": 60.0})

    async def scenario() -> None:
        with caplog.at_level(logging.ERROR, logger="edge_agent.sync"):
            for _ in range(600):
                await worker.tick()
                clock.now += 1.0
        assert 9 <= worker.attempts <= 11  # once a minute (backoff.max_s)
        assert set(cloud.statuses()) <= {401}
        assert worker.status().state == "unauthorized"
        assert "unauthorized" in (worker.status().last_error or "")
        assert len([r for r in caplog.records if "token" in r.getMessage()]) == 1
        assert store.stats().outbox_rows["summary"] == 5

        cloud.token = "device-token"  # what a corrected [sync] token would do
        clock.now += 60.0
        await drain(worker, clock)
        assert worker.state is SyncState.IDLE

    asyncio.run(scenario())
    assert_exactly_once(cloud, 5)


def test_a_row_the_cloud_refuses_is_quarantined_not_retried_forever(
    cloud: FakeCloud, store: Store, clock: FakeClock
) -> None:
    fill_summaries(store, 64)
    poison = 20.0 + 37  # the mean of summary 37

    def reject(batch: Batch) -> str | None:
        return "mean out of range" if any(s.mean == poison for s in batch.summaries) else None

    cloud.reject = reject
    worker, _ = make_worker(store, cloud.url, clock)

    asyncio.run(drain(worker, clock, max_ticks=100))

    rejections = cloud.statuses().count(422)
    # Halving 64 rows down to the one refused (and doubling again after each success):
    # O(log² n) refusals, not one per tick forever.
    assert 1 <= rejections <= 2 * 6 + 1
    assert worker.rejected == rejections
    stored = cloud.stored_summaries()
    assert len(stored) == len(set(stored)) == 63
    quarantined = store.sync_quarantined()
    assert len(quarantined) == 1
    row, reason = quarantined[0]
    assert row.data()["mean"] == poison and "mean out of range" in reason
    assert worker.status().quarantined == 1
    # Reported back: the twin's counters say one row was set aside.
    reported = cloud.stored_batches()[-1].reported
    assert reported is not None and reported.counters["sync_quarantined_rows"] == 1


def test_a_refused_envelope_backs_off_without_quarantining(
    cloud: FakeCloud, store: Store, clock: FakeClock
) -> None:
    fill_summaries(store, 8)
    cloud.max_future_skew_s = 300.0
    clock.now = time.time() + 86_400  # the device clock is a day ahead
    worker, _ = make_worker(store, cloud.url, clock, backoff={"max_s": 60.0})

    async def scenario() -> None:
        for _ in range(600):
            await worker.tick()
            clock.now += 1.0
        # 8 → 4 → 2 → 1 → probe without rows, all refused; then the probe once a minute.
        assert cloud.statuses().count(422) <= 5 + 11
        assert store.sync_quarantined() == []
        assert store.stats().outbox_rows["summary"] == 8
        assert worker.state is SyncState.BACKING_OFF

        clock.now = time.time()  # NTP fixed the clock
        clock.now += 0.0
        worker._next_at = 0.0
        await drain(worker, clock)

    asyncio.run(scenario())
    assert_exactly_once(cloud, 8)
    assert store.sync_quarantined() == []


def test_a_new_store_continues_after_the_clouds_sequence(
    cloud: FakeCloud, tmp_path: Path, clock: FakeClock
) -> None:
    with open_store(tmp_path / "old.db") as old:
        fill_summaries(old, 30)
        worker, _ = make_worker(old, cloud.url, clock, max_batch_bytes=4096)
        asyncio.run(drain(worker, clock))
    last = max(cloud.stored)
    assert last >= 3
    with open_store(tmp_path / "new.db") as new:  # a replaced SD card, same token
        fill_summaries(new, 3, ("other",))
        worker, _ = make_worker(new, cloud.url, clock)
        asyncio.run(drain(worker, clock))
    assert max(cloud.stored) == last + 1
    assert cloud.duplicates() == []
    assert ("other", sorted(expected_summaries(1))[0][1]) in cloud.stored_summaries()


def test_out_of_order_jumps_past_the_clouds_sequence(
    cloud: FakeCloud, store: Store, clock: FakeClock
) -> None:
    # The cloud holds sequence 10 (say, from a store this one was restored over); this
    # store remembers only 2.
    cloud.stored[10] = Batch(sequence=10, created_at=1.0)
    cloud.bodies[10] = b""
    store.set_meta_int(SEQUENCE_KEY, 2)
    fill_summaries(store, 5)
    worker, _ = make_worker(store, cloud.url, clock)

    asyncio.run(drain(worker, clock))

    assert cloud.statuses()[:2] == [409, 200]
    assert sorted(cloud.stored) == [10, 11]
    assert_exactly_once(cloud, 5)


def temp_rules() -> list[ValueRule | HealthRule]:
    return [
        ValueRule(name="temp-high", channel="temp", type="value_above", set=80, clear=75),
        HealthRule(name="temp-stale", channel="temp", type="health"),
    ]


def test_desired_changes_are_applied_and_reported_back(
    cloud: FakeCloud, store: Store, clock: FakeClock
) -> None:
    events = []
    engine = make_engine(temp_rules(), sink=events.append)  # keep what the engine raises
    fill_summaries(store, 5)
    cloud.desired = DesiredState(
        version=3,
        model_version="9.9.9",
        alarm_overrides={
            "temp-high": AlarmOverride(set=90, clear=85, severity="critical", on_delay_s=0),
            "no-such-rule": AlarmOverride(set=1),
            "temp-stale": AlarmOverride(set=3),
        },
        sync_interval_s=30,
    )
    worker, twin = make_worker(store, cloud.url, clock, engine=engine)

    async def until_reported(version: int) -> None:
        try:
            for _ in range(50):
                await worker.tick()
                clock.now += 1.0
                if cloud.reported and cloud.reported.desired_version_applied == version:
                    return
            raise AssertionError(f"desired {version} not reported back: {cloud.reported}")
        finally:
            await worker.aclose()  # its connections belong to this event loop

    asyncio.run(until_reported(3))

    rule = engine.rule("temp-high")
    assert (rule.set, rule.clear, rule.severity) == (90, 85, "critical")
    assert worker.interval_s == 30
    reported = cloud.reported
    assert reported is not None
    assert reported.applied == ["alarm_overrides.temp-high", "sync_interval_s"]
    refused = {r.key: r.reason for r in reported.refused}
    assert set(refused) == {
        "alarm_overrides.no-such-rule",
        "alarm_overrides.temp-stale",
        "model_version",
    }
    assert refused["model_version"] == OTA_REFUSAL
    assert "no alarm rule named" in refused["alarm_overrides.no-such-rule"]
    assert "set" in refused["alarm_overrides.temp-stale"]
    assert worker.status().desired_version == 3

    # The engine runs on the new levels: 85 no longer raises, 91 raises critical.
    engine.on_sample("temp", 1.0, 85.0)
    assert events == []
    engine.on_sample("temp", 2.0, 91.0)
    assert [(e.alarm.rule, e.alarm.severity) for e in events] == [("temp-high", "critical")]

    # A later desired state with nothing queued arrives by reading the twin; overrides
    # not named any more go back to the config; the running model version is accepted.
    cloud.desired = DesiredState(version=4, model_version=MODEL_VERSION)
    clock.now += 60.0
    asyncio.run(until_reported(4))
    assert engine.rule("temp-high").set == 80
    assert cloud.reported is not None
    assert cloud.reported.applied == ["model_version"]
    assert cloud.reported.refused == []
    assert cloud.twin_reads >= 1
    assert twin.outcome.refused == []
    assert RefusedChange(key="model_version", reason=OTA_REFUSAL) not in cloud.reported.refused


def test_the_persisted_desired_state_is_reapplied_at_restart(
    cloud: FakeCloud, tmp_path: Path, clock: FakeClock
) -> None:
    path = tmp_path / "agent.db"
    cloud.desired = DesiredState(
        version=7, alarm_overrides={"temp-high": AlarmOverride(set=95, clear=90)}
    )
    with open_store(path) as store:
        fill_summaries(store, 2)
        worker, twin = make_worker(store, cloud.url, clock, engine=make_engine(temp_rules()))
        asyncio.run(drain(worker, clock))
        version = twin.reported_version
    # Restart offline: the cloud is gone, the overrides stay.
    with open_store(path) as store:
        engine = make_engine(temp_rules())
        assert engine.rule("temp-high").set == 80
        worker, twin = make_worker(store, "http://127.0.0.1:9", clock, engine=engine)
        assert engine.rule("temp-high").set == 95
        assert twin.outcome.version == 7
        assert twin.outcome.applied == ["alarm_overrides.temp-high"]
        assert twin.reported_version == version  # persisted, not back to 0
        assert twin.reported().desired_version_applied == 7
        assert twin.reported_version == version + 1  # the content changed
        twin.reported()
        assert twin.reported_version == version + 1  # the same content: the same version
        assert worker.status().desired_version == 7


def test_a_timeout_is_transient_and_the_resend_is_deduplicated(
    cloud: FakeCloud, store: Store, clock: FakeClock
) -> None:
    fill_summaries(store, 10)
    store.set_meta_int(SEQUENCE_KEY, 0)  # not a new store: no twin read first
    cloud.fail(Fault.DELAY, times=1, delay_s=1.5, path="/v1/batches")
    worker, _ = make_worker(store, cloud.url, clock, timeout_s=0.3)

    async def scenario() -> None:
        await drain(worker, clock)
        assert worker.last_error is not None and "Timeout" in worker.last_error
        await asyncio.sleep(1.5)  # the slow first copy reaches the cloud after the resend

    asyncio.run(scenario())
    sent = [r for r in cloud.received if r.sequence == 1]
    assert [r.duplicate for r in sent] == [False, True]
    assert cloud.mismatched_resends == 0
    assert_exactly_once(cloud, 10)
