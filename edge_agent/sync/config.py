"""The [sync] section: where the cloud is, how often to send, how to back off."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator

from edgetwin_common.config import Name, Strict
from edgetwin_common.mqtt import BrokerConfig
from edgetwin_common.retry import BackoffConfig, complete_backoff_table
from edgetwin_contracts.batch import MAX_BATCH_DECOMPRESSED_BYTES


class MqttSyncConfig(Strict):
    """The broker the cloud listens on (docs/mqtt.md), for ``transport = "mqtt"``."""

    broker: BrokerConfig = BrokerConfig()
    """Host, port, this device's username/password (from ``cloud-sync devices add``),
    TLS, client certificate, keep-alive, reconnect backoff."""
    device: Name | None = None
    """This device's name in the topics (edgetwin/<device>/...); default: the broker
    username (the broker's ACL lets a device use only its own topics)."""

    @model_validator(mode="after")
    def _named(self) -> MqttSyncConfig:
        if self.device is None and self.broker.username is None:
            raise ValueError("device (or broker.username) is required")
        return self

    @property
    def device_name(self) -> str:
        name = self.device or self.broker.username
        assert name is not None
        return name


class SyncConfig(Strict):
    """Cloud sync (docs/sync.md). Off by default; when on, url and token are required
    (over HTTP), or the [sync.mqtt] broker (over MQTT)."""

    enabled: bool = False
    transport: Literal["http", "mqtt"] = "http"
    """How batches travel: HTTPS to ``url``, or MQTT through ``[sync.mqtt]``'s broker
    (docs/mqtt.md); the same batches, exactly once either way."""
    mqtt: MqttSyncConfig | None = None
    """The broker, for ``transport = "mqtt"``."""
    url: str = ""
    """The cloud's base URL, http:// or https:// (e.g. "https://cloud.example.com");
    batches go to {url}/v1/batches, the twin is read from {url}/v1/twin."""
    token: SecretStr | None = None
    """This device's bearer token, issued by the cloud (it identifies the device)."""
    interval_s: Annotated[float, Field(ge=1, le=86_400)] = 10.0
    """Seconds between sends while the outbox is drained; a backlog is sent batch after
    batch without waiting. The cloud's desired sync_interval_s overrides it."""
    reported_live_s: Annotated[float, Field(ge=1, le=86_400)] = 300.0
    """Seconds between reported states sent only because live values moved (last
    reading and time per channel, source counters, rejected counts); a change of
    model, config, health, warm-up, alarms or the desired outcome goes at once."""
    timeout_s: Annotated[float, Field(gt=0, le=600)] = 30.0
    """Per request: connect, send and wait for the answer."""
    max_batch_bytes: Annotated[int, Field(ge=4096, le=MAX_BATCH_DECOMPRESSED_BYTES)] = 1024 * 1024
    """Cap on a batch's JSON before compression; the compressed body is also kept within
    the cloud's 256 KiB."""
    backoff: BackoffConfig = BackoffConfig(initial_s=1.0, max_s=300.0)
    """Waits after failures, each between half and all of the nominal one (jitter);
    max_s is also the retry period while the token or the batch envelope is refused."""

    @model_validator(mode="before")
    @classmethod
    def _backoff_table(cls, data: Any, info: ValidationInfo) -> Any:
        renamed = {"backoff_min_s": ("initial_s",), "backoff_max_s": ("max_s",)}
        return complete_backoff_table(cls, data, info, renamed, "sync")

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        if url and not url.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        if url and len(url.split("://", 1)[1].strip("/")) == 0:
            raise ValueError("has no host")
        return url.rstrip("/")

    @model_validator(mode="after")
    def _complete_when_enabled(self) -> SyncConfig:
        problems = []
        if self.enabled and self.transport == "mqtt":
            if self.mqtt is None:
                problems.append('[sync.mqtt] is required with transport = "mqtt"')
        elif self.enabled:
            if not self.url:
                problems.append("url is required when sync is enabled")
            if self.token is None or not self.token.get_secret_value():
                problems.append("token is required when sync is enabled")
        if problems:
            raise ValueError("; ".join(problems))
        return self
