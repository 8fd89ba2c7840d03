"""What a device sends the cloud (a batch) and what the cloud answers (desired state).

Both sides validate with these models, so they cannot drift apart. Wire format: a JSON
``Batch``, gzip-compressed (``Content-Encoding: gzip``), POSTed with the device's
bearer token; the device id comes from the token, never from the body.

Exactly-once: the device numbers its batches 1, 2, 3, ... and resends a batch *as it
was* until the cloud acknowledges it; the cloud stores a (device, sequence) once and
answers a repeat with ``duplicate = true`` and the same acknowledgement.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

BATCH_SCHEMA_VERSION = 1
MAX_BATCH_BYTES = 256 * 1024
"""Cap on a compressed batch body, bytes."""
MAX_BATCH_DECOMPRESSED_BYTES = 4 * 1024 * 1024
"""Cap on a batch once decompressed (guards against gzip bombs)."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SummaryRecord(_Strict):
    """One channel over one interval [start, end) (the device's ``Summary.to_dict()``).
    A later record for the same (channel, start) supersedes an earlier one."""

    channel: Annotated[str, Field(min_length=1, max_length=64)]
    start: float
    end: float
    interval_s: Annotated[float, Field(gt=0)]
    count: Annotated[int, Field(ge=1)]
    min: float
    max: float
    mean: float
    std: Annotated[float, Field(ge=0)]
    last: float
    last_ts: float
    error_count: Annotated[int, Field(ge=0)] = 0
    error_mean: float | None = None
    error_mae: float | None = None
    error_rmse: float | None = None
    error_max_abs: float | None = None
    score_max: float | None = None


class AlarmRecord(_Strict):
    """The device's ``Alarm.to_dict()``."""

    id: Annotated[int, Field(ge=1)]
    rule: str
    channel: str
    kind: str
    severity: Literal["info", "warning", "critical"]
    state: Literal["active_unacknowledged", "active_acknowledged", "cleared"]
    raised_at: float
    value: float | None
    message: str
    acked_at: float | None = None
    acked_by: str | None = None
    cleared_at: float | None = None


class AlarmEventRecord(_Strict):
    """The device's ``AlarmEvent.to_dict()``: a state change with the alarm after it."""

    kind: Literal["raised", "acknowledged", "cleared"]
    ts: float
    alarm: AlarmRecord


class ModelReport(_Strict):
    name: str
    version: str
    sha256: str


class RefusedChange(_Strict):
    """A desired change the device did not apply, and why."""

    key: str
    reason: str


class ReportedState(_Strict):
    """What the device says about itself. Owned by the device; versioned by it."""

    version: Annotated[int, Field(ge=0)]
    """Increases whenever the reported content changes."""
    agent_version: str
    model: ModelReport
    config_hash: str
    sources: dict[str, dict[str, Any]] = Field(default_factory=dict)
    """Per source: state, since, last_error, counters."""
    channels: dict[str, dict[str, Any]] = Field(default_factory=dict)
    """Per channel: health, last value, rejected counts."""
    open_alarms: list[AlarmRecord] = Field(default_factory=list)
    counters: dict[str, int] = Field(default_factory=dict)
    """Device-wide counts, e.g. outbox_dropped_summaries."""
    desired_version_applied: Annotated[int, Field(ge=0)] = 0
    """The desired-state version this report reflects."""
    applied: list[str] = Field(default_factory=list)
    """Keys of the desired state in effect."""
    refused: list[RefusedChange] = Field(default_factory=list)


class Batch(_Strict):
    schema_version: Literal[1] = 1
    sequence: Annotated[int, Field(ge=1)]
    """Per device, 1, 2, 3, ...; a resend keeps its sequence and content."""
    created_at: float
    """Device clock, UNIX seconds (the cloud records its own receive time too)."""
    alarms: list[AlarmEventRecord] = Field(default_factory=list)
    summaries: list[SummaryRecord] = Field(default_factory=list)
    reported: ReportedState | None = None


class AlarmOverride(_Strict):
    """Replaces levels/delays/severity of one configured alarm rule, by rule name."""

    set: float | None = None
    clear: float | None = None
    on_delay_s: Annotated[float, Field(ge=0)] | None = None
    off_delay_s: Annotated[float, Field(ge=0)] | None = None
    severity: Literal["info", "warning", "critical"] | None = None


class DesiredState(_Strict):
    """What the cloud wants the device to run. Owned by the cloud; versioned by it."""

    version: Annotated[int, Field(ge=0)] = 0
    model_version: str | None = None
    """A released model version; None: keep the current model."""
    alarm_overrides: dict[str, AlarmOverride] = Field(default_factory=dict)
    sync_interval_s: Annotated[float, Field(ge=1, le=86_400)] | None = None


class BatchAck(_Strict):
    """The cloud's answer to a batch (200): stored now, or already stored before."""

    sequence: int
    duplicate: bool
    desired: DesiredState
