"""The sync transport family: how the worker's batches reach the cloud. HTTP
(``client.CloudClient``) and MQTT (``mqtt_transport.MqttTransport``) carry the same gzip
``Batch`` and answer with the same ``BatchAck``; exactly-once comes from the cloud's
acknowledgement of (device, sequence) in either case (docs/sync.md, docs/mqtt.md)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

from edge_agent.sync.client import CloudClient, TwinView
from edge_agent.sync.config import SyncConfig
from edgetwin_contracts.batch import BatchAck, DesiredState

__all__ = ["Transport", "build_transport"]


class Transport(Protocol):
    """What the sync worker needs of a transport. Every method raises the errors of
    ``edge_agent.sync.errors``, named for what the worker does next."""

    async def post_batch(self, sequence: int, body: bytes) -> BatchAck:
        """Deliver one gzip JSON batch and return the cloud's acknowledgement of it."""
        ...

    async def get_twin(self) -> TwinView:
        """The device's twin as the cloud holds it."""
        ...

    async def aclose(self) -> None: ...


DesiredListener = Callable[[DesiredState], Awaitable[object]]
"""Called on the worker's loop with each desired state a transport receives unasked."""


def build_transport(config: SyncConfig, on_desired: DesiredListener) -> Transport:
    """The transport ``config.transport`` names, created on the running loop (nothing
    connects before the first call). ``on_desired``: for transports that push the
    desired state (MQTT); HTTP reads it from each acknowledgement and twin read."""
    if config.transport == "mqtt":
        from edge_agent.sync.mqtt_transport import MqttTransport

        assert config.mqtt is not None
        return MqttTransport(config.mqtt, config.timeout_s, on_desired)
    token = config.token.get_secret_value() if config.token else ""
    return CloudClient(config.url, token, config.timeout_s)
