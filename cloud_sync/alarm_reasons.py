"""Alarm events as the devices sent them, each alarm with its reason (docs/cloud.md,
"Alarm events"): the API's list, and the reason laid out for the fleet page (what
tripped it, the score's parts, the top channel, and the window snapshot with its
forecast and limit as a small SVG chart)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from sqlalchemy import Engine, select

from cloud_sync.db.models import Device, StoredAlarmEvent
from cloud_sync.errors import DeviceNotFound
from cloud_sync.svg import PlotFrame
from edgetwin_contracts.batch import AlarmEventRecord, AlarmReasonRecord

MAX_EVENTS = 1000
"""Most alarm events one request lists."""


def list_alarm_events(
    engine: Engine, name: str, alarm_id: int | None, limit: int
) -> list[AlarmEventRecord]:
    """Device ``name``'s alarm events, newest first (of one alarm with ``alarm_id``),
    at most ``limit``; each alarm as the device sent it, with its reason. Raises
    DeviceNotFound."""
    with engine.connect() as conn:
        device = conn.execute(select(Device.id).where(Device.name == name)).scalar()
        if device is None:
            raise DeviceNotFound(f"no device named {name!r}")
        query = select(StoredAlarmEvent.kind, StoredAlarmEvent.ts, StoredAlarmEvent.alarm).where(
            StoredAlarmEvent.device_id == device
        )
        if alarm_id is not None:
            query = query.where(StoredAlarmEvent.alarm_id == alarm_id)
        rows = conn.execute(query.order_by(StoredAlarmEvent.id.desc()).limit(limit)).all()
    return [AlarmEventRecord.model_validate({"kind": k, "ts": ts, "alarm": a}) for k, ts, a in rows]


@dataclass(frozen=True, slots=True)
class ReasonChart:
    """The window snapshot as SVG polylines ("x,y x,y ..."), with the limit's y (None
    when the limit is not in the channel's units, or off the drawn range)."""

    width: int
    height: int
    values: str
    forecast: str
    limit_y: float | None
    low: float
    high: float


@dataclass(frozen=True, slots=True)
class ReasonView:
    """An alarm's reason as the fleet page shows it."""

    tripped: str
    """E.g. "score 24.9 ≥ 20", "health: stale"."""
    top_channel: str
    parts: list[tuple[str, str]]
    """(name, value as text), as the device listed them."""
    chart: ReasonChart | None


def _num(v: float) -> str:
    return f"{v:.4g}"


def reason_view(body: Mapping[str, Any] | None) -> ReasonView | None:
    """The reason of a stored alarm (``AlarmRecord`` as JSON); None when it has none
    (alarms from devices before reasons) or it does not read as one."""
    if body is None:
        return None
    try:
        r = AlarmReasonRecord.model_validate(body)
    except ValidationError:
        return None  # validated at ingest: only a hand-edited row can get here
    if r.limit is not None and r.value is not None:
        op = "≤" if r.direction == "below" else "≥"
        tripped = f"{r.trigger} {_num(r.value)} {op} {_num(r.limit)}"
    elif r.conditions:
        tripped = f"{r.trigger}: {', '.join(r.conditions)}"
    else:
        tripped = r.trigger
    parts = [(name, _num(v)) for name, v in r.parts.items()]
    return ReasonView(tripped, r.top_channel, parts, _chart(r))


def _chart(r: AlarmReasonRecord, width: int = 320, height: int = 90) -> ReasonChart | None:
    w = r.window
    if w is None or not w.ts:
        return None
    points = list(zip(w.ts, w.values, strict=True))
    ahead: list[tuple[float, float]] = []
    if w.forecast and w.forecast_ts is not None:
        ahead = [(w.forecast_ts, w.values[-1])] if w.forecast_ts == w.ts[-1] else []
        ahead += [(w.forecast_ts + h, v) for h, v in zip(w.horizons_s, w.forecast, strict=True)]
    in_units = r.trigger in ("value", "forecast") and r.limit is not None
    ys = [v for _, v in points + ahead] + ([r.limit] if in_units and r.limit is not None else [])
    xs = [t for t, _ in points + ahead]
    frame = PlotFrame(min(xs), max(xs), min(ys), max(ys), width, height, pad=3.0)
    limit_y = frame.y(r.limit) if in_units and r.limit is not None else None
    return ReasonChart(
        width, height, frame.points(points), frame.points(ahead), limit_y, frame.y0, frame.y1
    )
