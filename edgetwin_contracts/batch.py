"""What a device sends the cloud (a batch) and what the cloud answers (desired state).

Both sides validate with these models, so they cannot drift apart. Wire format: a JSON
``Batch``, gzip-compressed (``Content-Encoding: gzip``), POSTed with the device's
bearer token; the device id comes from the token, never from the body.

Exactly-once: the device numbers its batches 1, 2, 3, ... and resends a batch *as it
was* until the cloud acknowledges it; the cloud stores a (device, sequence) once and
answers a repeat with ``duplicate = true`` and the same acknowledgement.

Types are strict on the wire: a number sent as a string ("7"), a bool sent for a number
or a float for an integer is refused, never coerced; NaN and infinities are refused
everywhere. A summary's interval and range must be ordered (start < end, min <= max).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, Strict, model_validator

from edgetwin_contracts.manifest import ReleaseVersion

BATCH_SCHEMA_VERSION = 1
MAX_BATCH_BYTES = 256 * 1024
"""Cap on a compressed batch body, bytes."""
MAX_BATCH_DECOMPRESSED_BYTES = 4 * 1024 * 1024
"""Cap on a batch once decompressed (guards against gzip bombs)."""
MAX_SEQUENCE = 2**53
"""Highest batch sequence: every JSON parser holds it exactly (an IEEE double's integers),
and a device sending one batch a second needs 285 million years to reach it."""
MAX_SEQUENCE_JUMP = 2**31
"""How far ahead of the last stored sequence the cloud accepts a batch (a device that
lost batches skips a few; a jump beyond this is a forged or corrupt sequence that would
strand the device's sync, so it is refused with 422)."""
MIN_TIMESTAMP = 946_684_800.0
"""2000-01-01T00:00:00Z: the earliest timestamp a batch may carry (UNIX seconds). A
device clock before it has not been set (a Pi without RTC boots at 1970)."""

WireInt = Annotated[int, Strict()]
"""An integer on the wire: "7", 7.0 and true are refused."""
WireFloat = Annotated[float, Strict()]
"""A finite number on the wire (an integer is fine): "7" and true are refused."""
WireBool = Annotated[bool, Strict()]

MAX_WINDOW_POINTS = 64
"""Most model steps an alarm's reason carries in its window snapshot (and most forecast
values): enough to draw the moment, small enough for many alarms in one batch."""
MAX_REASON_PARTS = 16
"""Most score parts an alarm's reason carries."""
MAX_REASON_NAME = 64
"""Longest rule, channel, trigger or part name in a reason."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class SummaryRecord(_Strict):
    """One channel over one interval [start, end) (the device's ``Summary.to_dict()``).
    A later record for the same (channel, start) supersedes an earlier one."""

    channel: Annotated[str, Field(min_length=1, max_length=64)]
    start: WireFloat
    end: WireFloat
    """After start."""
    interval_s: Annotated[WireFloat, Field(gt=0)]
    count: Annotated[WireInt, Field(ge=1)]
    min: WireFloat
    max: WireFloat
    """At least min."""
    mean: WireFloat
    std: Annotated[WireFloat, Field(ge=0)]
    last: WireFloat
    last_ts: WireFloat
    error_count: Annotated[WireInt, Field(ge=0)] = 0
    error_mean: WireFloat | None = None
    error_mae: WireFloat | None = None
    error_rmse: WireFloat | None = None
    error_max_abs: WireFloat | None = None
    score_max: WireFloat | None = None

    @model_validator(mode="after")
    def _ordered(self) -> SummaryRecord:
        if self.end <= self.start:
            raise ValueError(f"end {self.end} is not after start {self.start}")
        if self.min > self.max:
            raise ValueError(f"min {self.min} is above max {self.max}")
        return self


ReasonName = Annotated[str, Field(min_length=1, max_length=MAX_REASON_NAME)]


class WindowSnapshotRecord(_Strict):
    """The device's ``WindowSnapshot.to_dict()``: the last model steps before an alarm
    and the forecast made at the last of them. ts and values pair up (as do horizons_s
    and forecast); times ascend; every number is finite."""

    ts: Annotated[list[WireFloat], Field(max_length=MAX_WINDOW_POINTS)]
    values: Annotated[list[WireFloat], Field(max_length=MAX_WINDOW_POINTS)]
    forecast_ts: WireFloat | None = None
    horizons_s: Annotated[list[WireFloat], Field(max_length=MAX_WINDOW_POINTS)] = []
    forecast: Annotated[list[WireFloat], Field(max_length=MAX_WINDOW_POINTS)] = []

    @model_validator(mode="after")
    def _paired(self) -> WindowSnapshotRecord:
        if len(self.ts) != len(self.values):
            raise ValueError(f"ts has {len(self.ts)} points but values {len(self.values)}")
        if len(self.horizons_s) != len(self.forecast):
            raise ValueError(
                f"horizons_s has {len(self.horizons_s)} points but forecast {len(self.forecast)}"
            )
        if any(b < a for a, b in zip(self.ts, self.ts[1:], strict=False)):
            raise ValueError("ts must ascend")
        if self.forecast and self.forecast_ts is None:
            raise ValueError("a forecast needs its forecast_ts")
        return self


class AlarmReasonRecord(_Strict):
    """The device's ``AlarmReason.to_dict()``: why an alarm was raised."""

    rule: ReasonName
    trigger: Literal["value", "forecast", "score", "rate", "health", "internal"]
    top_channel: ReasonName
    value: WireFloat | None = None
    limit: WireFloat | None = None
    direction: Literal["above", "below"] | None = None
    parts: Annotated[dict[ReasonName, WireFloat], Field(max_length=MAX_REASON_PARTS)] = {}
    conditions: Annotated[list[Literal["stale", "stuck", "disconnected"]], Field(max_length=3)] = []
    window: WindowSnapshotRecord | None = None


class AlarmRecord(_Strict):
    """The device's ``Alarm.to_dict()``."""

    id: Annotated[WireInt, Field(ge=1)]
    rule: str
    channel: str
    kind: str
    severity: Literal["info", "warning", "critical"]
    state: Literal["active_unacknowledged", "active_acknowledged", "cleared"]
    raised_at: WireFloat
    value: WireFloat | None
    message: str
    acked_at: WireFloat | None = None
    acked_by: str | None = None
    cleared_at: WireFloat | None = None
    reason: AlarmReasonRecord | None = None
    """Why it was raised (None from devices before reasons, and for alarms restored
    from before them)."""


class AlarmEventRecord(_Strict):
    """The device's ``AlarmEvent.to_dict()``: a state change with the alarm after it."""

    kind: Literal["raised", "acknowledged", "cleared"]
    ts: WireFloat
    alarm: AlarmRecord


class ModelReport(_Strict):
    name: str
    version: str
    sha256: str


class RefusedChange(_Strict):
    """A desired change the device did not apply, and why."""

    key: str
    reason: str


class ModelUpdateState(StrEnum):
    IDLE = "idle"
    DOWNLOADING = "downloading"
    VERIFYING = "verifying"
    SELF_TESTING = "self_testing"
    GUARDING = "guarding"
    """Swapped in; the previous model runs in shadow for the first samples."""
    INSTALLED = "installed"
    """Passed the live guard: the release is healthy on this device."""
    REJECTED = "rejected"
    """Refused before it ran (download, hash, signature, shapes, golden vectors, self-test,
    anti-rollback); the previous model kept serving."""
    ROLLED_BACK = "rolled_back"
    """Ran, did worse than the previous model (or failed) in the live guard: undone."""


class ModelUpdateReport(_Strict):
    """Where the device is with the desired model, and why it refused any release."""

    state: ModelUpdateState = ModelUpdateState.IDLE
    version: str | None = None
    """The release this state is about."""
    reason: str | None = None
    ts: WireFloat | None = None
    bad_versions: dict[str, str] = Field(default_factory=dict)
    """Release version -> why this device rejected or rolled it back; the cloud marks
    those releases bad for this device and does not offer them again."""
    guard_samples: Annotated[WireInt, Field(ge=0)] | None = None
    """Samples the live guard compared the two models on (installed / rolled back)."""
    guard_mae_new: WireFloat | None = None
    """The release's one-step MAE over those samples (channel units, all channels)."""
    guard_mae_old: WireFloat | None = None
    """The previous model's one-step MAE over the same samples, run in shadow."""


class ReportedState(_Strict):
    """What the device says about itself. Owned by the device; versioned by it."""

    version: Annotated[WireInt, Field(ge=0)]
    """Increases whenever the reported content changes."""
    agent_version: str
    model: ModelReport
    config_hash: str
    sources: dict[str, dict[str, Any]] = Field(default_factory=dict)
    """Per source: state, since, last_error, counters."""
    channels: dict[str, dict[str, Any]] = Field(default_factory=dict)
    """Per channel: health, last value, rejected counts."""
    open_alarms: list[AlarmRecord] = Field(default_factory=list)
    counters: dict[str, WireInt] = Field(default_factory=dict)
    """Device-wide counts, e.g. outbox_dropped_summaries."""
    desired_version_applied: Annotated[WireInt, Field(ge=0)] = 0
    """The desired-state version this report reflects."""
    applied: list[str] = Field(default_factory=list)
    """Keys of the desired state in effect."""
    refused: list[RefusedChange] = Field(default_factory=list)
    model_update: ModelUpdateReport | None = None
    twin: ModelReport | None = None
    """The cross-channel twin in service (None: no [twin] section, or none loaded)."""
    twin_update: ModelUpdateReport | None = None
    """Where the device is with the desired twin (same states as the model's)."""


class Batch(_Strict):
    schema_version: Literal[1] = 1
    sequence: Annotated[WireInt, Field(ge=1, le=MAX_SEQUENCE)]
    """Per device, 1, 2, 3, ...; a resend keeps its sequence and content. At most
    MAX_SEQUENCE, and at most MAX_SEQUENCE_JUMP past the last one the cloud stored."""
    created_at: WireFloat
    """Device clock, UNIX seconds (the cloud records its own receive time too); every
    timestamp of a batch is refused before MIN_TIMESTAMP or too far in the future."""
    alarms: list[AlarmEventRecord] = Field(default_factory=list)
    summaries: list[SummaryRecord] = Field(default_factory=list)
    reported: ReportedState | None = None


class AlarmOverride(_Strict):
    """Replaces levels/delays/severity of one configured alarm rule, by rule name."""

    set: WireFloat | None = None
    clear: WireFloat | None = None
    on_delay_s: Annotated[WireFloat, Field(ge=0)] | None = None
    off_delay_s: Annotated[WireFloat, Field(ge=0)] | None = None
    severity: Literal["info", "warning", "critical"] | None = None


class ModelRelease(_Strict):
    """A signed model bundle released for this device, as a tar archive of the bundle's
    files (model.tflite, manifest.json, manifest.sig). The device checks the archive's
    size and sha256 before unpacking, then the bundle's signature against its own
    release public key before any interpreter opens the model."""

    version: ReleaseVersion
    sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    """Of the archive."""
    size_bytes: Annotated[WireInt, Field(gt=0)]
    url: Annotated[str, Field(min_length=1)]
    """Path on the cloud (e.g. /v1/releases/<sha256>/bundle), fetched with the device token."""
    is_rollback: WireBool = False
    """The cloud explicitly asks for an older version (otherwise anti-rollback refuses it)."""


class DesiredState(_Strict):
    """What the cloud wants the device to run. Owned by the cloud; versioned by it."""

    version: Annotated[WireInt, Field(ge=0)] = 0
    model_version: str | None = None
    """A released model version; None: keep the current model."""
    model: ModelRelease | None = None
    """The release behind model_version, filled in by the cloud's rollout."""
    twin_version: str | None = None
    """A released twin version (a bundle with a twin spec); None: keep the current twin."""
    twin: ModelRelease | None = None
    """The release behind twin_version, filled in by the cloud's rollout."""
    alarm_overrides: dict[str, AlarmOverride] = Field(default_factory=dict)
    sync_interval_s: Annotated[WireFloat, Field(ge=1, le=86_400)] | None = None


class BatchAck(_Strict):
    """The cloud's answer to a batch (200): stored now, or already stored before."""

    sequence: WireInt
    duplicate: WireBool
    desired: DesiredState
