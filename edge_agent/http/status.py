"""The agent's state as the outside sees it: /status, /metrics and (later) the twin.

Pydantic models so the HTTP API documents them in its OpenAPI schema.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from edgetwin_contracts.batch import AlarmReasonRecord


class AgentInfo(BaseModel):
    name: str
    version: str
    started_at: float
    uptime_s: float
    is_ready: bool


class ModelInfo(BaseModel):
    name: str
    version: str
    sha256: str
    backend: str
    path: str
    window_length: int
    horizons: list[int]


class SourceInfo(BaseModel):
    name: str
    type: str
    state: str
    since: float
    last_reading_ts: float | None
    last_error: str | None
    counters: dict[str, int]


class Forecast(BaseModel):
    horizons: list[int]
    """Model steps ahead."""
    values: list[float]
    """Channel units."""
    horizon_s: list[float] | None = None
    """Each horizon in seconds ahead: steps x model_period_s, or, when that is None (a
    scale-free model on every reading), x the mean interval between readings so far."""
    model_period_s: float | None = None
    """Seconds between two model steps: the model's input.sample_period_s (the channel's
    samples averaged over it), else the channel's sample_period_s; None: every reading."""


class ChannelInfo(BaseModel):
    name: str
    unit: str
    source: str
    last_ts: float | None
    last_value: float | None
    forecast: Forecast | None
    anomaly_score: float | None
    is_warm: bool
    readings: int
    """Readings received."""
    processed: int
    """Samples that went through the model (after cleaning and resampling)."""
    rejected: dict[str, int]
    """Readings rejected by cleaning, by reason."""
    window_restarts: int
    health: list[str]
    """Active health conditions: stale, stuck, disconnected."""
    mean_inference_us: float | None


class AlarmInfo(BaseModel):
    id: int
    rule: str
    channel: str
    kind: str
    severity: str
    state: str
    raised_at: float
    value: float | None
    message: str
    acked_at: float | None
    acked_by: str | None
    cleared_at: float | None
    reason: AlarmReasonRecord | None = None
    """Why it was raised: rule, what tripped it, the score's parts, the top channel and
    the recent window with its forecast (docs/alarms.md); None for older alarms."""


class StoreInfo(BaseModel):
    path: str
    details: dict[str, float | int | str | None]


class SyncInfo(BaseModel):
    """Cloud sync health (docs/sync.md)."""

    enabled: bool = False
    state: str = "disabled"
    """disabled, idle, sending, backing_off, unauthorized or failed."""
    last_success_ts: float | None = None
    """UNIX seconds of the last request the cloud answered with success."""
    last_attempt_ts: float | None = None
    last_error: str | None = None
    """The last failure (kept after recovery; compare its time with last_success_ts)."""
    last_error_ts: float | None = None
    backlog: dict[str, int] = Field(default_factory=dict)
    """Outbox rows awaiting acknowledgement, by kind (alarm, summary)."""
    in_flight: int | None = None
    """Sequence of the batch sent and not yet acknowledged."""
    batches_sent: int = 0
    """Batches acknowledged (including duplicates) since the agent started."""
    duplicates: int = 0
    """Acknowledgements saying the cloud already had the batch (a resend after a lost answer)."""
    rejected: int = 0
    """Batches the cloud refused (400/413/415/422) since the agent started."""
    quarantined: int = 0
    """Outbox rows set aside because the cloud (or the device) refused them alone; total."""
    consecutive_failures: int = 0
    next_attempt_in_s: float | None = None
    last_sequence: int = 0
    """The last sequence the cloud acknowledged."""
    desired_version: int = 0
    """The desired-state version in effect."""
    reported_version: int = 0
    interval_s: float | None = None


class AgentStatus(BaseModel):
    agent: AgentInfo
    model: ModelInfo | None
    """None when the agent runs without a model (``problem`` says why)."""
    sources: list[SourceInfo]
    channels: list[ChannelInfo]
    alarms: list[AlarmInfo]
    """Active alarms (and cleared ones still unacknowledged)."""
    store: StoreInfo
    sync: SyncInfo = Field(default_factory=SyncInfo)
    problem: str | None = None
    """Why the agent is not processing readings (no model), else None."""
    actions: list[ActionInfo] = Field(default_factory=list)
    """Every alarm action (log, webhook, GPIO output...) and whether its outputs get through."""
    alarm_levels: list[AlarmLevel] = Field(default_factory=list)
    """The levels in effect (value, forecast and score rules, after the cloud's
    overrides), one entry per rule and channel: the status page draws them as lines."""


class ReadingInfo(BaseModel):
    ts: float
    channel: str
    value: float
    forecast: float | None
    """The one-step forecast that was made for this sample."""
    anomaly_score: float | None


class ActionInfo(BaseModel):
    """One alarm action's health: is the control room getting the alarms?"""

    name: str
    type: str
    """The action's plugin key: log, webhook, gpio..."""
    last_success: float | None
    """UNIX seconds of the last delivery (or output switch) that worked; None: none yet."""
    last_error: str | None
    """The last failure, kept after a recovery (compare last_error_at with last_success)."""
    last_error_at: float | None
    queue_depth: int
    """Events queued or being delivered."""
    dropped: int
    """Events given up on for lack of room or at shutdown, since the agent started."""
    failed: int = 0
    """Events given up on after their retries (or refused by the receiver)."""
    is_failing: bool = False
    """The last outcome was an error: alarms are not getting through now."""
    counters: dict[str, int] = Field(default_factory=dict)


class AlarmLevel(BaseModel):
    """A level an alarm rule compares a channel's value (or forecast) with."""

    rule: str
    channel: str
    type: str
    """value_above, value_below, forecast_above, forecast_below or score_above."""
    set: float
    """Channel units (score_above: the anomaly score's)."""
    clear: float
    """As ``set`` (the set level when the rule has no hysteresis)."""
    severity: str
