"""The sync worker recovers by itself from whatever the cloud answers: a sequence of
2^63 - 1 that someone with the device's token made the cloud store, a 409 the cloud's
own twin contradicts, twin answers with NaN, strings or nesting where numbers belong.
The cloud is the fake cloud served by real uvicorn; the store is real SQLite; time is a
FakeClock moved by what each tick asks for."""

from __future__ import annotations

import asyncio
import gzip
import json
from pathlib import Path
from typing import Any

import pytest
from fastapi import Request
from fastapi.responses import Response

from edge_agent.config import LoadedConfig, parse_config
from edge_agent.doctor import cloud as doctor_cloud
from edge_agent.doctor.base import DoctorContext, Status
from edge_agent.store import Store
from edge_agent.store.meta import SEQUENCE_KEY
from edge_agent.sync.client import MAX_SEQUENCE
from edge_agent.sync.worker import SyncState, SyncWorker
from edgetwin_common.testing import FakeClock

from .fakecloud import FakeCloud
from .helpers import TOKEN, drain, fill_summaries, make_worker

INT64_MAX = 2**63 - 1


def post_as_the_device(cloud: FakeCloud, sequence: int) -> int:
    """What a cloned SD card or a test script could do with the device's token before the
    cloud bounded sequences: today's contract refuses 2**63-1 (tests/cloud_sync cover that
    side), so the fake cloud is put straight into the state such a cloud was left in."""
    cloud.store_unchecked(sequence)
    return 200


async def ticks(worker: SyncWorker, clock: FakeClock, n: int) -> None:
    for _ in range(n):
        clock.now += await worker.tick()


def test_a_cloud_at_int64_max_stops_sending_reports_and_resumes_by_itself(
    cloud: FakeCloud, store: Store, clock: FakeClock
) -> None:
    fill_summaries(store, 3)
    worker, _ = make_worker(store, cloud.url, clock)

    async def main() -> None:
        await drain(worker, clock)
        sent_before = len(cloud.stored)
        assert post_as_the_device(cloud, INT64_MAX) == 200

        fill_summaries(store, 5, ("other",))
        await ticks(worker, clock, 30)

        status = worker.status()
        assert worker.state is SyncState.DIVERGED and status.state == "diverged"
        assert f"sequence {INT64_MAX}" in (status.last_error or "")
        assert str(MAX_SEQUENCE) in (status.last_error or "")
        assert max(cloud.stored) == INT64_MAX and len(cloud.stored) == sent_before + 1
        assert store.meta_int(SEQUENCE_KEY) < MAX_SEQUENCE  # never followed the cloud
        # Diverged: only twin reads, one per backoff.max_s (60 s), no POST storm.
        posts, twin_reads = len(cloud.received), cloud.twin_reads
        await ticks(worker, clock, 10)
        assert len(cloud.received) == posts
        assert cloud.twin_reads == twin_reads + 10

        # The operator resets the device on the cloud: the worker resyncs by itself.
        del cloud.stored[INT64_MAX]
        await drain(worker, clock)
        assert worker.status().state == "idle"
        await worker.aclose()

    asyncio.run(main())
    stored = cloud.stored_summaries()
    assert len(stored) == len(set(stored)) == 3 + 5  # each once
    assert cloud.mismatched_resends == 0


def test_a_new_store_does_not_follow_an_out_of_range_cloud(
    cloud: FakeCloud, store: Store, clock: FakeClock
) -> None:
    assert post_as_the_device(cloud, INT64_MAX) == 200
    fill_summaries(store, 2)
    worker, _ = make_worker(store, cloud.url, clock)

    async def main() -> None:
        await ticks(worker, clock, 5)
        assert worker.state is SyncState.DIVERGED
        assert store.sync_inflight() is None
        del cloud.stored[INT64_MAX]
        await drain(worker, clock)
        await worker.aclose()

    asyncio.run(main())
    assert len(cloud.stored_summaries()) == 2


def test_a_409_the_twin_contradicts_is_resent_with_backoff_not_skipped(
    cloud: FakeCloud, store: Store, clock: FakeClock
) -> None:
    fill_summaries(store, 2)
    worker, _ = make_worker(store, cloud.url, clock)

    @cloud.app.middleware("http")
    async def conflict_once(request: Request, call_next: Any) -> Any:
        if request.url.path == "/v1/batches" and not conflicted:
            conflicted.append(True)
            return Response('{"detail": "out of order"}', 409, media_type="application/json")
        return await call_next(request)

    conflicted: list[bool] = []
    cloud.app.middleware_stack = cloud.app.build_middleware_stack()

    async def main() -> None:
        store.set_meta_int(SEQUENCE_KEY, 0)  # not a new store: no twin read first
        delay = await worker.tick()
        assert delay > 0 and worker.state is SyncState.BACKING_OFF
        inflight = store.sync_inflight()
        assert inflight is not None and inflight.sequence == 1  # kept, not skipped
        clock.now += delay
        await drain(worker, clock)
        await worker.aclose()

    asyncio.run(main())
    assert sorted(cloud.stored) == [1]


BAD_TWINS: list[tuple[str, bytes]] = [
    ("nan", b'{"last_sequence": NaN}'),
    ("infinity", b'{"last_sequence": 1, "reported_version": Infinity}'),
    ("string", b'{"last_sequence": "7"}'),
    ("float", b'{"last_sequence": 1e300}'),
    ("negative", b'{"last_sequence": -5}'),
    ("object", b'{"desired_version": {"a": 1}}'),
    ("list", b"[1, 2]"),
    ("deep", b'{"desired": ' + b'{"a": ' * 5000 + b"1" + b"}" * 5001),
]


@pytest.mark.parametrize(("name", "body"), BAD_TWINS, ids=[n for n, _ in BAD_TWINS])
def test_an_unreadable_twin_is_a_transient_failure(
    cloud: FakeCloud, store: Store, clock: FakeClock, name: str, body: bytes
) -> None:
    fill_summaries(store, 1)
    worker, _ = make_worker(store, cloud.url, clock)
    bad = [True]

    @cloud.app.middleware("http")
    async def garbage_twin(request: Request, call_next: Any) -> Any:
        if request.url.path == "/v1/twin" and bad[0]:
            return Response(body, 200, media_type="application/json")
        return await call_next(request)

    cloud.app.middleware_stack = cloud.app.build_middleware_stack()

    async def main() -> None:
        await ticks(worker, clock, 3)  # a new store reads the twin first
        assert worker.state is SyncState.BACKING_OFF, name
        assert "unreadable twin" in (worker.last_error or "")
        assert store.sync_inflight() is None
        bad[0] = False
        await drain(worker, clock)
        await worker.aclose()

    asyncio.run(main())
    assert len(cloud.stored_summaries()) == 1
    json.dumps(worker.status().model_dump())  # the status stays serialisable


def test_doctor_reports_a_cloud_sequence_out_of_range(cloud: FakeCloud, tmp_path: Path) -> None:
    text = (
        f'[agent]\ndata_dir = "{tmp_path}"\n'
        f'[sync]\nenabled = true\nurl = "{cloud.url}"\ntoken = "{TOKEN}"\n'
    )
    path = tmp_path / "agent.toml"
    path.write_text(text)
    loaded = LoadedConfig(path, parse_config(text, str(path)))
    context = DoctorContext(path, "nobody", loaded)
    cloud.app.get("/health")(lambda: {"status": "ok"})
    cloud.app.router.routes.insert(0, cloud.app.router.routes.pop())
    healthy = doctor_cloud.check(context)
    assert [f.status for f in healthy] == [Status.OK, Status.OK], healthy
    assert post_as_the_device(cloud, INT64_MAX) == 200
    findings = doctor_cloud.check(context)
    assert findings[1].status is Status.FAIL
    assert str(INT64_MAX) in findings[1].message and "diverged" in findings[1].message


@pytest.mark.parametrize("level", [b"NaN", b"Infinity", b"1e999"])
def test_an_ack_with_a_non_finite_level_is_not_applied(
    cloud: FakeCloud, store: Store, clock: FakeClock, level: bytes
) -> None:
    fill_summaries(store, 1)
    worker, twin = make_worker(store, cloud.url, clock)
    bad = [True]

    @cloud.app.middleware("http")
    async def poisoned_ack(request: Request, call_next: Any) -> Any:
        if request.url.path == "/v1/batches" and bad[0]:
            sequence = json.loads(gzip.decompress(await request.body()))["sequence"]
            ack = (
                b'{"sequence": %d, "duplicate": false, "desired": {"version": 5,'
                b' "alarm_overrides": {"temp-high": {"set": %s}}}}' % (sequence, level)
            )
            return Response(ack, 200, media_type="application/json")
        return await call_next(request)

    cloud.app.middleware_stack = cloud.app.build_middleware_stack()

    async def main() -> None:
        await ticks(worker, clock, 3)
        assert worker.state is SyncState.BACKING_OFF
        assert "unreadable acknowledgement" in (worker.last_error or "")
        assert store.sync_inflight() is not None  # kept, resent later
        assert twin.outcome.version == 0  # nothing applied
        bad[0] = False
        await drain(worker, clock)
        await worker.aclose()

    asyncio.run(main())
    assert len(cloud.stored_summaries()) == 1
