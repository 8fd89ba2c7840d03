"""The MQTT sync transport (docs/mqtt.md): the worker's batches published QoS 1 on the
device's own topic, the cloud's acknowledgement awaited on its ack topic.

Exactly once, as over HTTP: ``post_batch`` returns only when the cloud's
acknowledgement for that sequence arrives (the cloud stored the batch, or had already);
the broker's PUBACK means nothing to the worker, which deletes outbox rows on the
acknowledgement alone. A batch without an acknowledgement within ``timeout_s`` is
CloudUnavailable: the worker resends the same bytes and the cloud deduplicates them.

The desired state is a retained message on the device's desired topic: it arrives at
each (re)connection and at once when the cloud changes it, and goes to ``on_desired``
on the worker's loop. A birth message ("online", retained) follows each connection; the
broker publishes the will ("offline", retained) when the device vanishes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid

from pydantic import ValidationError

from edge_agent.sync.client import REJECTED_STATUSES, TwinView
from edge_agent.sync.config import MqttSyncConfig
from edge_agent.sync.errors import (
    BatchOutOfOrder,
    BatchRejected,
    CloudUnauthorized,
    CloudUnavailable,
)
from edge_agent.sync.transport import DesiredListener
from edgetwin_common.mqtt import Connection, Message, Will
from edgetwin_contracts.batch import BatchAck, DesiredState
from edgetwin_contracts.mqtt import OFFLINE, ONLINE, MqttAck, TwinReply, TwinRequest, topic

__all__ = ["MqttTransport"]

log = logging.getLogger(__name__)

_LEAVES = ("ack", "twin", "desired")
"""What the device subscribes to in its own tree."""


class MqttTransport:
    """One device's MQTT link to the cloud. Create on the worker's loop; nothing
    connects before the first call. Counters: batches, acks, late_acks, twins,
    desired, unreadable."""

    def __init__(self, config: MqttSyncConfig, timeout_s: float, on_desired: DesiredListener):
        self.config = config
        self.device = config.device_name
        self.timeout_s = timeout_s
        self._on_desired = on_desired
        self.counters: dict[str, int] = dict.fromkeys(
            ("batches", "acks", "late_acks", "twins", "desired", "unreadable"), 0
        )
        self._acks: dict[int, asyncio.Future[MqttAck]] = {}
        self._twins: dict[str, asyncio.Future[TwinReply]] = {}
        self._tasks: set[asyncio.Task[object]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._connection: Connection | None = None

    @property
    def is_connected(self) -> bool:
        return self._connection is not None and self._connection.is_connected

    # -- the Transport contract ----------------------------------------------------

    async def post_batch(self, sequence: int, body: bytes) -> BatchAck:
        """Publish the batch and wait for the cloud's acknowledgement. Raises
        CloudUnavailable (no broker, or no acknowledgement in time: resend),
        CloudUnauthorized, BatchRejected, BatchOutOfOrder."""
        connection = await self._connected()
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[MqttAck] = loop.create_future()
        self._acks[sequence] = waiter
        try:
            # The sequence beside the body: the cloud names it in its answer even to a
            # body it cannot read.
            correlation = str(sequence).encode()
            connection.publish(topic(self.device, "batch"), body, 1, False, correlation)
            self.counters["batches"] += 1
            reply = await asyncio.wait_for(waiter, self.timeout_s)
        except TimeoutError:
            raise CloudUnavailable(
                f"no acknowledgement of batch {sequence} within {self.timeout_s:g} s"
            ) from None
        finally:
            self._acks.pop(sequence, None)
        if reply.status == 200 and reply.ack is not None:
            return reply.ack
        _raise_for(reply.status, reply.detail)
        raise AssertionError("unreachable")  # pragma: no cover

    async def get_twin(self) -> TwinView:
        """Ask for the twin and wait for the reply. Raises CloudUnavailable,
        CloudUnauthorized."""
        connection = await self._connected()
        request = uuid.uuid4().hex
        waiter: asyncio.Future[TwinReply] = asyncio.get_running_loop().create_future()
        self._twins[request] = waiter
        try:
            payload = TwinRequest(request=request).model_dump_json()
            connection.publish(topic(self.device, "twin/get"), payload, 1, False)
            reply = await asyncio.wait_for(waiter, self.timeout_s)
        except TimeoutError:
            raise CloudUnavailable(f"no twin from the cloud within {self.timeout_s:g} s") from None
        finally:
            self._twins.pop(request, None)
        if reply.status in (401, 403):
            raise CloudUnauthorized(f"twin: {reply.status}: {reply.detail}")
        if reply.status != 200 or reply.twin is None:
            raise CloudUnavailable(f"twin: {reply.status}: {reply.detail}")
        try:
            return TwinView(reply.twin)
        except (ValueError, ValidationError) as exc:
            raise CloudUnavailable(f"unreadable twin: {exc}") from exc

    async def aclose(self) -> None:
        """Say "offline" (retained) and disconnect."""
        connection, self._connection = self._connection, None
        if connection is None:
            return
        if connection.is_connected:
            info = connection.publish(topic(self.device, "status"), OFFLINE, 1, True)
            with contextlib.suppress(RuntimeError, ValueError):  # else the will says it
                await asyncio.to_thread(info.wait_for_publish, 2.0)
        await asyncio.to_thread(connection.stop)
        for task in list(self._tasks):
            task.cancel()

    # -- the connection ------------------------------------------------------------

    async def _connected(self) -> Connection:
        if self._connection is None:
            self._loop = asyncio.get_running_loop()
            status = topic(self.device, "status")
            self._connection = Connection(
                self.config.broker,
                f"edgetwin-device-{self.device}",
                on_connect=self._subscribe,
                on_message=self._received,
                will=Will(status, OFFLINE, 1, True),
            )
            self._connection.start()
        connection = self._connection
        if not connection.is_connected:
            ok = await asyncio.to_thread(connection.wait_connected, self.timeout_s)
            if not ok:
                raise CloudUnavailable(
                    f"broker {self.config.broker.where()} unreachable: {connection.last_error}"
                )
        return connection

    def _subscribe(self, connection: Connection) -> None:
        # The connection's thread, after each CONNACK: a new session needs them again.
        for leaf in _LEAVES:
            connection.subscribe(topic(self.device, leaf), 1)
        connection.publish(topic(self.device, "status"), ONLINE, 1, True)

    def _received(self, message: Message) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._dispatch, message.topic, bytes(message.payload))

    def _dispatch(self, name: str, payload: bytes) -> None:
        leaf = name.rsplit("/", 1)[-1]
        try:
            if leaf == "ack":
                self._acked(MqttAck.model_validate_json(payload))
            elif leaf == "twin":
                reply = TwinReply.model_validate_json(payload)
                waiter = self._twins.get(reply.request)
                if waiter is not None and not waiter.done():
                    self.counters["twins"] += 1
                    waiter.set_result(reply)
            elif leaf == "desired":
                desired = DesiredState.model_validate_json(payload)
                self.counters["desired"] += 1
                task = asyncio.ensure_future(self._on_desired(desired))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
        except ValidationError as exc:
            self.counters["unreadable"] += 1
            log.warning("unreadable message on %s: %s", name, exc)

    def _acked(self, reply: MqttAck) -> None:
        waiter = self._acks.get(reply.sequence) if reply.sequence is not None else None
        if waiter is None or waiter.done():
            # An acknowledgement of a resend already answered, or of a batch given up on
            # (timed out): the worker resends and the cloud answers duplicate.
            self.counters["late_acks"] += 1
            return
        self.counters["acks"] += 1
        waiter.set_result(reply)


def _raise_for(status: int, detail: str) -> None:
    """The same outcomes as the HTTP statuses (``CloudClient``)."""
    if status in (401, 403):
        raise CloudUnauthorized(f"{status}: {detail}")
    if status == 409:
        raise BatchOutOfOrder(f"409: {detail}")
    if status in REJECTED_STATUSES:
        raise BatchRejected(status, detail)
    raise CloudUnavailable(f"{status}: {detail}")
