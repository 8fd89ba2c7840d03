"""The sync contract over MQTT (docs/mqtt.md): one topic tree per device, the batch
bytes exactly as HTTP sends them (gzip JSON ``Batch``), and the cloud's answers.

Per device ``<d>`` (the broker's user name; its ACL lets it use only its own tree):

| topic | who publishes | payload | retained |
|---|---|---|---|
| ``edgetwin/<d>/batch`` | device, QoS 1 | gzip JSON ``Batch`` | no |
| ``edgetwin/<d>/ack`` | cloud, QoS 1 | ``MqttAck`` JSON | no |
| ``edgetwin/<d>/twin/get`` | device, QoS 1 | ``TwinRequest`` JSON | no |
| ``edgetwin/<d>/twin`` | cloud, QoS 1 | ``TwinReply`` JSON | no |
| ``edgetwin/<d>/desired`` | cloud, QoS 1 | ``DesiredState`` JSON | yes |
| ``edgetwin/<d>/status`` | device (birth; will) | ``online`` / ``offline`` | yes |

The cloud reads batches through the MQTT 5 shared subscription ``BATCH_SHARED`` so
that replicas split them. Device identity comes from the topic, which the broker's ACL
ties to the credential, never from the body (as over HTTP it comes from the token).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from edgetwin_contracts.batch import BatchAck

__all__ = [
    "BATCH_SHARED",
    "PREFIX",
    "MqttAck",
    "TwinReply",
    "TwinRequest",
    "device_of",
    "topic",
]

PREFIX = "edgetwin"
SHARE_GROUP = "cloud"
BATCH_SHARED = f"$share/{SHARE_GROUP}/{PREFIX}/+/batch"
"""The cloud's subscription to every device's batches, split between its replicas."""
ONLINE = b"online"
OFFLINE = b"offline"


def topic(device: str, leaf: str) -> str:
    """``edgetwin/<device>/<leaf>`` (leaf: batch, ack, twin/get, twin, desired, status)."""
    return f"{PREFIX}/{device}/{leaf}"


def device_of(name: str) -> tuple[str, str] | None:
    """(device, leaf) of a topic of the tree, or None for any other topic."""
    parts = name.split("/", 2)
    if len(parts) != 3 or parts[0] != PREFIX or not parts[1]:
        return None
    return parts[1], parts[2]


class _Wire(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class MqttAck(_Wire):
    """The cloud's answer to one batch, with the status HTTP would have answered: 200
    with ``ack`` (stored now or a duplicate); 400/413/415/422 rejected as it is; 401 the
    device is unknown; 409 out of order; 503 the cloud could not store it now."""

    sequence: int | None
    """The batch's sequence (None when the body was too broken to read one)."""
    status: int
    detail: str = ""
    ack: BatchAck | None = None


class TwinRequest(_Wire):
    request: str
    """An id the reply repeats."""


class TwinReply(_Wire):
    """What GET /v1/twin answers, for ``request``; status 200, or 401/503 with detail."""

    request: str
    status: int
    detail: str = ""
    twin: dict[str, Any] | None = None
