"""The agent's state as the outside sees it: /status, /metrics and (later) the twin.

Pydantic models so the HTTP API documents them in its OpenAPI schema.
"""

from __future__ import annotations

from pydantic import BaseModel


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
    """Samples ahead."""
    values: list[float]
    """Channel units."""


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


class StoreInfo(BaseModel):
    path: str
    details: dict[str, float | int | str | None]


class AgentStatus(BaseModel):
    agent: AgentInfo
    model: ModelInfo
    sources: list[SourceInfo]
    channels: list[ChannelInfo]
    alarms: list[AlarmInfo]
    """Active alarms (and cleared ones still unacknowledged)."""
    store: StoreInfo


class ReadingInfo(BaseModel):
    ts: float
    channel: str
    value: float
    forecast: float | None
    """The one-step forecast that was made for this sample."""
    anomaly_score: float | None
