"""The [sync] section: where the cloud is, how often to send, how to back off."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator

from edgetwin_common.config import Strict
from edgetwin_common.retry import BackoffConfig, complete_backoff_table
from edgetwin_contracts.batch import MAX_BATCH_DECOMPRESSED_BYTES


class SyncConfig(Strict):
    """Cloud sync (docs/sync.md). Off by default; when on, url and token are required."""

    enabled: bool = False
    url: str = ""
    """The cloud's base URL, http:// or https:// (e.g. "https://cloud.example.com");
    batches go to {url}/v1/batches, the twin is read from {url}/v1/twin."""
    token: SecretStr | None = None
    """This device's bearer token, issued by the cloud (it identifies the device)."""
    interval_s: Annotated[float, Field(ge=1, le=86_400)] = 10.0
    """Seconds between sends while the outbox is drained; a backlog is sent batch after
    batch without waiting. The cloud's desired sync_interval_s overrides it."""
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
        if self.enabled and not self.url:
            problems.append("url is required when sync is enabled")
        if self.enabled and (self.token is None or not self.token.get_secret_value()):
            problems.append("token is required when sync is enabled")
        if problems:
            raise ValueError("; ".join(problems))
        return self
