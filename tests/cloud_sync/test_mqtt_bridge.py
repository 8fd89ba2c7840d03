"""The cloud's MQTT side on a real Mosquitto, against the device's own transport
(``MqttTransport``): batches stored once through the HTTP ingest code and acknowledged;
malformed, oversized and unauthenticated payloads counted with nothing stored; desired
changes pushed (retained) and applied without a sync; presence from birth and will;
group commits; replicas splitting the batches through the shared subscription."""

from __future__ import annotations

import asyncio
import gzip
import json
from collections.abc import Iterator
from typing import Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import Engine, func, select

from cloud_sync.db.models import StoredBatch, StoredSummary
from cloud_sync.mqtt.bridge import MqttBridge
from cloud_sync.mqtt.config import MqttSection
from cloud_sync.twin import DesiredPatch, patch_desired
from edge_agent.sync.config import MqttSyncConfig
from edge_agent.sync.errors import BatchRejected, CloudUnauthorized
from edge_agent.sync.mqtt_transport import MqttTransport
from edgetwin_common.mosquitto import Mosquitto
from edgetwin_common.testing import wait_until, wait_until_async
from edgetwin_contracts.batch import MAX_BATCH_BYTES, DesiredState
from tests.cloud_sync.conftest import batch
from tests.mqtt_broker import broker

__all__ = ["broker"]

FAST = {"backoff": {"initial_s": 0.05, "max_s": 0.2}}


@pytest.fixture
def bridge(broker: Mosquitto, engine: Engine, tokens: dict[str, str]) -> Iterator[MqttBridge]:
    config = MqttSection(enabled=True, broker={"port": broker.port, **FAST}, desired_poll_s=0.02)
    running = MqttBridge(config, engine, max_future_skew_s=86_400)
    running.start()
    assert running.connection.wait_connected(30)
    yield running
    running.stop()


def transport(broker: Mosquitto, device: str, desired: list[DesiredState]) -> MqttTransport:
    async def on_desired(state: DesiredState) -> None:
        desired.append(state)

    config = MqttSyncConfig.model_validate(
        {"device": device, "broker": {"port": broker.port, **FAST}}
    )
    return MqttTransport(config, 10.0, on_desired)


def gz(body: dict[str, Any]) -> bytes:
    return gzip.compress(json.dumps(body).encode())


def stored(engine: Engine) -> tuple[int, int]:
    with engine.connect() as conn:
        batches = conn.execute(select(func.count()).select_from(StoredBatch)).scalar_one()
        summaries = conn.execute(select(func.count()).select_from(StoredSummary)).scalar_one()
    return batches, summaries


def test_batches_are_stored_once_and_acknowledged(
    broker: Mosquitto, bridge: MqttBridge, engine: Engine
) -> None:
    desired: list[DesiredState] = []
    link = transport(broker, "pump-1", desired)

    async def main() -> None:
        first = await link.post_batch(1, gz(batch(1)))
        again = await link.post_batch(1, gz(batch(1)))
        second = await link.post_batch(2, gz(batch(2, summaries=[])))
        assert (first.sequence, first.duplicate) == (1, False)
        assert (again.sequence, again.duplicate) == (1, True)
        assert (second.sequence, second.duplicate) == (2, False)
        twin = await link.get_twin()
        assert twin.last_sequence == 2
        await link.aclose()

    asyncio.run(main())
    assert stored(engine) == (2, 2)
    assert bridge.counters["stored"] == 2 and bridge.counters["duplicates"] == 1


def test_bad_payloads_are_counted_and_nothing_is_stored(
    broker: Mosquitto, bridge: MqttBridge, engine: Engine
) -> None:
    desired: list[DesiredState] = []
    link = transport(broker, "pump-1", desired)
    stranger = transport(broker, "not-registered", desired)

    async def main() -> None:
        with pytest.raises(BatchRejected) as rejected:
            await link.post_batch(1, b"not gzip at all")
        assert rejected.value.status == 400
        with pytest.raises(BatchRejected) as invalid:
            await link.post_batch(1, gz({"sequence": 1, "created_at": "yesterday"}))
        assert invalid.value.status == 422
        with pytest.raises(BatchRejected) as large:
            await link.post_batch(1, b"\x1f\x8b" + bytes(MAX_BATCH_BYTES))
        assert large.value.status == 413
        with pytest.raises(CloudUnauthorized):
            await stranger.post_batch(1, gz(batch(1)))
        await link.aclose()
        await stranger.aclose()

    asyncio.run(main())
    # A payload published by anything on the topic, not only our transport.
    raw = paho.Client(CallbackAPIVersion.VERSION2)
    raw.connect(broker.host, broker.port)
    raw.loop_start()
    raw.publish("edgetwin/pump-2/batch", b"\x00\x01garbage", 1).wait_for_publish(10)
    raw.loop_stop()
    raw.disconnect()
    wait_until(lambda: bridge.counters["malformed"] == 2)
    assert stored(engine) == (0, 0)
    assert bridge.counters["invalid"] == 1
    assert bridge.counters["oversized"] == 1
    assert bridge.counters["unauthenticated"] == 1
    assert bridge.counters["stored"] == 0


def test_a_desired_change_arrives_without_a_sync(
    broker: Mosquitto, bridge: MqttBridge, engine: Engine
) -> None:
    desired: list[DesiredState] = []
    link = transport(broker, "pump-1", desired)

    async def main() -> None:
        await link.post_batch(1, gz(batch(1)))
        # The retained desired state came with the subscription.
        await wait_until_async(lambda: desired and desired[-1].version == 0)
        patch = DesiredPatch.model_validate({"sync_interval_s": 42})
        await asyncio.to_thread(patch_desired, engine, "pump-1", 0, patch)
        # No batch, no twin read: the change is pushed.
        await wait_until_async(lambda: desired[-1].version == 1)
        assert desired[-1].sync_interval_s == 42
        await link.aclose()

    asyncio.run(main())


def test_presence_follows_birth_and_will(broker: Mosquitto, bridge: MqttBridge) -> None:
    desired: list[DesiredState] = []
    link = transport(broker, "pump-2", desired)

    async def main() -> None:
        await link.get_twin()
        await wait_until_async(lambda: (s := bridge.presence.get("pump-2")) and s.is_online)
        assert link._connection is not None
        # Gone without a word: the broker sends the will after the keep-alive.
        link._connection._stop.set()
        link._connection.client.socket().close()  # type: ignore[union-attr]
        await wait_until_async(lambda: not bridge.presence.get("pump-2").is_online)  # type: ignore[union-attr]

    asyncio.run(main())


def test_a_group_is_one_commit_and_a_refused_batch_leaves_the_others(
    bridge: MqttBridge, engine: Engine
) -> None:
    assert bridge.ingest("pump-2", gz(batch(5))).status == 200
    replies = bridge.ingest_group(
        [
            ("pump-1", gz(batch(1)), 1),
            ("pump-2", gz(batch(3)), 3),  # below pump-2's highest, never stored: 409
            ("pump-1", gz(batch(1)), 1),  # a resend in the same group: duplicate
            ("nobody", gz(batch(1)), 1),  # unknown device: 401
            ("pump-2", b"garbage", 6),  # unreadable: 400, answered with its correlation
            ("pump-2", gz(batch(6)), 6),
        ]
    )
    assert [(r.sequence, r.status) for r in replies] == [
        (1, 200), (3, 409), (1, 200), (1, 401), (6, 400), (6, 200),
    ]  # fmt: skip
    assert replies[0].ack is not None and not replies[0].ack.duplicate
    assert replies[2].ack is not None and replies[2].ack.duplicate
    assert stored(engine) == (3, 6)  # pump-2 5 and 6, pump-1 1: two summaries each


def test_replicas_split_the_batches_through_the_shared_subscription(
    broker: Mosquitto, bridge: MqttBridge, engine: Engine
) -> None:
    config = MqttSection(enabled=True, broker={"port": broker.port, **FAST})
    second = MqttBridge(config, engine, max_future_skew_s=86_400)
    second.start()
    assert second.connection.wait_connected(30)
    desired: list[DesiredState] = []
    links = [transport(broker, name, desired) for name in ("pump-1", "pump-2")]

    async def main() -> None:
        async def send(link: MqttTransport) -> None:
            for sequence in range(1, 21):
                ack = await link.post_batch(sequence, gz(batch(sequence, summaries=[])))
                assert (ack.sequence, ack.duplicate) == (sequence, False)

        await asyncio.gather(*(send(link) for link in links))
        for link in links:
            await link.aclose()

    try:
        asyncio.run(main())
    finally:
        second.stop()
    counts = (bridge.counters["stored"], second.counters["stored"])
    # Each batch went to one replica only, and both took a share.
    assert sum(counts) == 40 and min(counts) > 0, counts
    assert stored(engine) == (40, 0)
