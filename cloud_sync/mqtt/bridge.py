"""The cloud's side of the MQTT sync contract (``edgetwin_contracts.mqtt``).

- Batches arrive through the MQTT 5 shared subscription ``$share/cloud/edgetwin/+/batch``
  (replicas split them) and go through the same steps as ``POST /v1/batches``
  (``cloud_sync.ingest``: decode with its caps, parse, store once by (device,
  sequence)) on ingest threads, each committing what queued meanwhile (up to
  MAX_GROUP batches of as many devices) in one transaction, acknowledged after it.
  Each gets an ``MqttAck`` on the device's ack topic with the status HTTP would have
  answered. The device is the topic's, which the
  broker's ACL ties to the device's credential; a name the database does not know is
  answered 401 and nothing is stored.
- Twin requests (``twin/get``) are answered on ``twin``, as GET /v1/twin.
- Desired states: the database is read every ``desired_poll_s`` for versions changed by
  any replica; each change is published retained on the device's desired topic, so a
  device applies it on arrival, and at its next connection if it was away.
- Presence: every replica reads the retained birth/will messages (``status``) and
  keeps who is online (``Presence``), which the fleet page shows.

Counters: received, stored, duplicates, malformed, oversized, unauthenticated, invalid,
out_of_order, unavailable, twins, desired_published.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from sqlalchemy import Engine, func, select
from sqlalchemy.exc import SQLAlchemyError

from cloud_sync.db.models import Device
from cloud_sync.errors import (
    BodyTooLarge,
    DeviceNotFound,
    RequestRejected,
    SequenceOutOfOrder,
    TokenRejected,
)
from cloud_sync.ingest import body_digest, decode_body, parse_batch
from cloud_sync.mqtt.config import MqttSection
from cloud_sync.mqtt.group import Pending, store_batches
from cloud_sync.registry import device_id
from cloud_sync.twin import get_twin
from edgetwin_common.mqtt import Connection, Message, correlation_of
from edgetwin_contracts.batch import MAX_BATCH_BYTES, DesiredState
from edgetwin_contracts.mqtt import (
    BATCH_SHARED,
    ONLINE,
    PREFIX,
    SHARE_GROUP,
    MqttAck,
    TwinReply,
    TwinRequest,
    device_of,
    topic,
)

__all__ = ["MqttBridge", "Presence"]

log = logging.getLogger(__name__)

MAX_GROUP = 64
"""Batches stored in one transaction at most (what is queued when a writer is free)."""
_COUNTERS = (
    "received",
    "stored",
    "duplicates",
    "malformed",
    "oversized",
    "unauthenticated",
    "invalid",
    "out_of_order",
    "unavailable",
    "twins",
    "desired_published",
)


@dataclass(frozen=True, slots=True)
class PresenceState:
    is_online: bool
    since: float
    """Server time the state was received (UNIX seconds)."""


class Presence:
    """Who is online, from the devices' retained birth and will messages."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._states: dict[str, PresenceState] = {}

    def set(self, device: str, is_online: bool, now: float) -> None:
        with self._lock:
            self._states[device] = PresenceState(is_online, now)

    def get(self, device: str) -> PresenceState | None:
        with self._lock:
            return self._states.get(device)

    def is_online(self, device: str) -> bool | None:
        """Online, offline, or None when the device never said."""
        state = self.get(device)
        return None if state is None else state.is_online


class MqttBridge:
    """Runs the cloud's MQTT side on ``engine`` (see the module docstring). ``start`` /
    ``stop`` as the service's other jobs."""

    name = "mqtt"

    def __init__(
        self,
        config: MqttSection,
        engine: Engine,
        max_future_skew_s: float,
        presence: Presence | None = None,
    ) -> None:
        self.config = config
        self._engine = engine
        self._max_future_skew_s = max_future_skew_s
        self.presence = presence or Presence()
        self.counters: dict[str, int] = dict.fromkeys(_COUNTERS, 0)
        self._counter_lock = threading.Lock()
        self._device_ids: dict[str, int] = {}
        self._published_desired: dict[int, int] = {}
        self._desired_total: tuple[object, ...] | None = None
        threads = 1 if engine.dialect.name == "sqlite" else config.ingest_threads
        self._threads = threads
        self._executor: ThreadPoolExecutor | None = None
        self._queue: queue.Queue[tuple[str, bytes, int | None] | None] = queue.Queue()
        self._writers: list[threading.Thread] = []
        self._stop = threading.Event()
        self._desired_thread: threading.Thread | None = None
        self.connection = Connection(
            config.broker,
            f"cloud-sync-{uuid.uuid4().hex[:12]}",
            on_connect=self._subscribe,
            on_message=self._received,
        )

    def start(self) -> None:
        self._stop.clear()
        self._executor = ThreadPoolExecutor(2, thread_name_prefix="cloud-sync-mqtt-twin")
        self._writers = [
            threading.Thread(target=self._writer, name=f"cloud-sync-mqtt-ingest-{i}", daemon=True)
            for i in range(self._threads)
        ]
        for writer in self._writers:
            writer.start()
        self._published_desired.clear()
        self.connection.start()
        self._desired_thread = threading.Thread(
            target=self._desired_loop, name="cloud-sync-mqtt-desired", daemon=True
        )
        self._desired_thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._desired_thread is not None:
            self._desired_thread.join(10.0)
        self.connection.stop()
        for _ in self._writers:
            self._queue.put(None)
        for writer in self._writers:
            writer.join(30.0)
        self._writers = []
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    def _count(self, key: str) -> None:
        with self._counter_lock:
            self.counters[key] += 1

    # -- messages ------------------------------------------------------------------

    def _subscribe(self, connection: Connection) -> None:
        connection.subscribe(BATCH_SHARED, 1)
        connection.subscribe(f"$share/{SHARE_GROUP}/{PREFIX}/+/twin/get", 1)
        connection.subscribe(f"{PREFIX}/+/status", 1)
        # A new session: every desired state again (retained, so it is idempotent).
        self._published_desired.clear()
        self._desired_total = None

    def _received(self, message: Message) -> None:
        found = device_of(message.topic)
        if found is None:
            return
        device, leaf = found
        payload = bytes(message.payload)
        if leaf == "status":
            self.presence.set(device, payload == ONLINE, time.time())
            return
        executor = self._executor
        if executor is None:
            return
        if leaf == "batch":
            self._count("received")
            self._queue.put((device, payload, _sequence_of(message)))
        elif leaf == "twin/get":
            executor.submit(self._twin, device, payload)

    def _writer(self) -> None:
        """Take what is queued (up to MAX_GROUP batches) and store it in one commit."""
        while True:
            first = self._queue.get()
            if first is None:
                return
            group = [first]
            stop = False
            while len(group) < MAX_GROUP:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                    break
                group.append(item)
            try:
                replies = self.ingest_group(group)
            except Exception:  # the writer's boundary: this group, not the bridge
                log.exception("mqtt ingest of %d batch(es) failed", len(group))
                replies = [
                    MqttAck(sequence=s, status=503, detail="internal error") for _, _, s in group
                ]
            for (device, _, _), reply in zip(group, replies, strict=True):
                self.connection.publish(topic(device, "ack"), reply.model_dump_json(), 1, False)
            if stop:
                return

    def ingest(self, device: str, payload: bytes, sequence: int | None = None) -> MqttAck:
        """One batch of ``device``: the acknowledgement to publish (``ingest_group``)."""
        return self.ingest_group([(device, payload, sequence)])[0]

    def ingest_group(self, group: list[tuple[str, bytes, int | None]]) -> list[MqttAck]:
        """Decode and validate each (device, payload, sequence from the correlation
        data) as POST /v1/batches does, store the valid ones in one transaction, and
        return each one's acknowledgement. Never raises for a bad batch or an unknown
        device (counted)."""
        now = time.time()
        replies: list[MqttAck | None] = [None] * len(group)
        pending: list[Pending] = []
        where: list[int] = []
        for i, (device, payload, sequence) in enumerate(group):
            try:
                pending.append(self._prepare(device, payload, now))
                where.append(i)
            except RequestRejected as exc:
                replies[i] = self._rejected(exc, sequence)
        if pending:
            try:
                results = store_batches(self._engine, pending, now)
            except SQLAlchemyError as exc:
                log.warning("mqtt ingest: database unavailable: %s", exc)
                for i, item in zip(where, pending, strict=True):
                    self._count("unavailable")
                    replies[i] = MqttAck(
                        sequence=item.batch.sequence, status=503, detail="database unavailable"
                    )
            else:
                for i, item, result in zip(where, pending, results, strict=True):
                    if isinstance(result, RequestRejected):
                        replies[i] = self._rejected(result, item.batch.sequence)
                    else:
                        self._count("duplicates" if result.ack.duplicate else "stored")
                        replies[i] = MqttAck(
                            sequence=item.batch.sequence, status=200, ack=result.ack
                        )
        return [r for r in replies if r is not None]

    def _prepare(self, device: str, payload: bytes, now: float) -> Pending:
        if len(payload) > MAX_BATCH_BYTES:
            raise BodyTooLarge(
                f"body of {len(payload)} bytes exceeds the cap of {MAX_BATCH_BYTES} bytes"
            )
        ident = self._device_id(device)
        data = decode_body(payload, "gzip")
        batch = parse_batch(data, now, self._max_future_skew_s)
        return Pending(ident, batch, body_digest(data))

    def _rejected(self, exc: RequestRejected, sequence: int | None) -> MqttAck:
        self._count(_rejection_counter(exc))
        detail = exc.detail if isinstance(exc.detail, str) else repr(exc.detail)[:2000]
        return MqttAck(sequence=sequence, status=exc.status, detail=detail)

    def _device_id(self, device: str) -> int:
        found = self._device_ids.get(device)
        if found is None:
            try:
                found = self._device_ids[device] = device_id(self._engine, device)
            except DeviceNotFound:
                raise TokenRejected(f"no device named {device!r}") from None
        return found

    def _twin(self, device: str, payload: bytes) -> None:
        try:
            request = TwinRequest.model_validate_json(payload)
        except ValidationError:
            self._count("malformed")
            return
        reply: dict[str, Any] = {"request": request.request}
        try:
            reply.update(status=200, twin=get_twin(self._engine, device).model_dump(mode="json"))
        except DeviceNotFound:
            reply.update(status=401, detail=f"no device named {device!r}")
        except SQLAlchemyError:
            reply.update(status=503, detail="database unavailable")
        self._count("twins")
        body = TwinReply.model_validate(reply).model_dump_json()
        self.connection.publish(topic(device, "twin"), body, 1, False)

    # -- desired states ------------------------------------------------------------

    def _desired_loop(self) -> None:
        while not self._stop.wait(self.config.desired_poll_s):
            if not self.connection.is_connected:
                continue
            try:
                self.publish_desired()
            except SQLAlchemyError as exc:
                log.warning("mqtt: could not read desired states: %s", exc)
                self._stop.wait(1.0)

    def publish_desired(self) -> int:
        """Publish (retained) each desired state changed since the last call; how many."""
        with self._engine.connect() as conn:
            # Versions only go up and ids too: one aggregate row says whether anything
            # changed, so the frequent poll reads no device rows while nothing does.
            total = tuple(
                conn.execute(
                    select(func.count(), func.max(Device.id), func.sum(Device.desired_version))
                ).one()
            )
            if total == self._desired_total:
                return 0
            versions = conn.execute(select(Device.id, Device.desired_version)).all()
            changed = [i for i, v in versions if self._published_desired.get(i) != v]
            if not changed:
                self._desired_total = total
                return 0
            rows = conn.execute(
                select(Device.id, Device.name, Device.desired, Device.desired_version).where(
                    Device.id.in_(changed)
                )
            ).all()
        for row in rows:
            desired = DesiredState.model_validate({**row.desired, "version": row.desired_version})
            self.connection.publish(topic(row.name, "desired"), desired.model_dump_json(), 1, True)
            self._published_desired[row.id] = row.desired_version
            self._count("desired_published")
        self._desired_total = total
        return len(rows)


def _sequence_of(message: Message) -> int | None:
    data = correlation_of(message)
    if data is None or not data.isdigit() or len(data) > 19:
        return None
    return int(data)


def _rejection_counter(exc: RequestRejected) -> str:
    if isinstance(exc, TokenRejected):
        return "unauthenticated"
    if isinstance(exc, BodyTooLarge):
        return "oversized"
    if isinstance(exc, SequenceOutOfOrder):
        return "out_of_order"
    if exc.status == 400 or exc.status == 415:
        return "malformed"
    return "invalid"
