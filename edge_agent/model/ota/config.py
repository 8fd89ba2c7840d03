"""The [ota] section: where installed bundles live, which key signs releases, and how
cautious the live guard is."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, ValidationInfo, model_validator

from edgetwin_common.config import Strict
from edgetwin_common.retry import BackoffConfig, complete_backoff_table


class OtaConfig(Strict):
    """Model updates from the cloud (docs/ota.md). Active only with [sync] enabled."""

    enabled: bool = True
    """Install the model the cloud's desired state names; false: refuse (reported)."""
    models_dir: Path = Path("models")
    """Installed bundles and the current-model pointer; relative to [agent] data_dir."""
    release_public_key: Path | None = None
    """PEM public key every downloaded release must be signed with; None: [model]
    public_key if set, else the key of the shipped model."""
    max_bundle_bytes: Annotated[int, Field(ge=1024, le=256 << 20)] = 16 << 20
    """Cap on a release archive, bytes; a larger one is refused before and while
    downloading."""
    guard_samples: Annotated[int, Field(ge=1, le=1_000_000)] = 200
    """Processed samples (all channels together) during which the previous model runs in
    shadow after a swap."""
    guard_margin: Annotated[float, Field(ge=0, le=10)] = 0.10
    """The new model's one-step MAE may be at most this much worse (0.10 = 10 %) than the
    previous model's over the guard; worse: automatic rollback."""
    self_test_timeout_s: Annotated[float, Field(gt=0, le=600)] = 60.0
    """Limit for the child process that loads the bundle and runs its golden vectors."""
    backoff: BackoffConfig = BackoffConfig(initial_s=30.0, max_s=30.0)
    """Waits before resuming an interrupted download, doubling while attempts bring no
    new byte (no jitter; by default a steady 30 s)."""
    download_attempts: Annotated[int, Field(ge=1, le=100)] = 5
    """Attempts in a row that bring no new byte before the release is rejected."""

    @model_validator(mode="before")
    @classmethod
    def _backoff_table(cls, data: Any, info: ValidationInfo) -> Any:
        # The old key was one steady pause: both ends of the new range.
        renamed = {"download_retry_s": ("initial_s", "max_s")}
        return complete_backoff_table(cls, data, info, renamed, "ota")
