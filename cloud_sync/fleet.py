"""The fleet: one overview row per device (GET /v1/devices) and the HTML fleet page.

The page is rendered on the server (Jinja2, autoescaped): devices with their twin
versions, models and cross-channel twins (reported and desired, and where each update
stands), one small inline SVG chart per channel (the
mean of the recent interval summaries as a line over their min–max band), the model
releases with their rollout state, and the open alarms of the whole fleet. A small
script of its own (cloud_sync/static/fleet.js) refreshes it in place; without script
the page is complete as served.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from pydantic import BaseModel
from sqlalchemy import Engine, func, select

from cloud_sync.alarm_reasons import ReasonView, reason_view
from cloud_sync.config import FleetSection
from cloud_sync.db.models import Device, ReleaseAssignment, StoredAlarm, StoredSummary
from cloud_sync.releases.model import ReleaseInfo
from cloud_sync.releases.records import list_releases
from cloud_sync.svg import PlotFrame
from edgetwin_common.durations import duration_text

TEMPLATES = Path(__file__).resolve().parent / "templates"
STATIC = Path(__file__).resolve().parent / "static"
_SOURCE_OK = {"connected", "starting", "finished"}


class Health(StrEnum):
    """A device's health in one word, worst first."""

    STALE = "stale"
    """No batch for longer than [fleet] stale_after_s."""
    DEGRADED = "degraded"
    """A source disconnected or a channel with an active health condition."""
    OK = "ok"
    UNKNOWN = "unknown"
    """Registered, no report yet."""


class DeviceOverview(BaseModel):
    """One row of GET /v1/devices."""

    name: str
    last_seen: float | None
    """Server time of the last batch, UNIX seconds."""
    model_version: str | None
    """As reported by the device."""
    model_update: str | None = None
    """The state of the device's model update (``reported.model_update.state``:
    downloading … guarding, installed, rejected, rolled_back); None: none reported."""
    twin_version: str | None = None
    """The cross-channel twin in service, as reported (None: none)."""
    twin_update: str | None = None
    """The state of the device's twin update (``reported.twin_update.state``)."""
    open_alarms: int
    health: Health
    reported_version: int | None
    desired_version: int
    is_desired_applied: bool
    last_sequence: int
    is_online: bool | None = None
    """Over MQTT: connected to the broker (birth) or gone (its will); None when the
    device's presence is unknown (it syncs over HTTP, or [mqtt] is off)."""


PresenceLookup = Callable[[str], bool | None]
"""A device name -> online, offline, or None for unknown (``cloud_sync.mqtt``)."""


def health_of(
    reported: dict[str, Any] | None, last_seen: float | None, now: float, stale_after_s: float
) -> Health:
    """Health from the reported state and the time since the last batch."""
    if reported is None or last_seen is None:
        return Health.UNKNOWN
    if now - last_seen > stale_after_s:
        return Health.STALE
    sources = reported.get("sources") or {}
    channels = reported.get("channels") or {}
    if any(
        isinstance(s, dict) and s.get("state") not in _SOURCE_OK | {None} for s in sources.values()
    ) or any(isinstance(c, dict) and c.get("health") for c in channels.values()):
        return Health.DEGRADED
    return Health.OK


def overview(
    engine: Engine,
    fleet: FleetSection,
    now: float | None = None,
    presence: PresenceLookup | None = None,
) -> list[DeviceOverview]:
    """Every device, by name."""
    now = time.time() if now is None else now
    with engine.connect() as conn:
        open_counts = dict(
            conn.execute(
                select(StoredAlarm.device_id, func.count())
                .where(StoredAlarm.state != "cleared")
                .group_by(StoredAlarm.device_id)
            ).all()
        )
        devices = conn.execute(select(Device.__table__).order_by(Device.name)).all()
    rows = []
    for d in devices:
        reported = d.reported
        applied = (reported or {}).get("desired_version_applied", -1)
        rows.append(
            DeviceOverview(
                name=d.name,
                last_seen=d.last_seen,
                model_version=((reported or {}).get("model") or {}).get("version"),
                model_update=_update_state(reported, "model_update"),
                twin_version=((reported or {}).get("twin") or {}).get("version"),
                twin_update=_update_state(reported, "twin_update"),
                open_alarms=open_counts.get(d.id, 0),
                health=health_of(reported, d.last_seen, now, fleet.stale_after_s),
                reported_version=d.reported_version,
                desired_version=d.desired_version,
                is_desired_applied=reported is not None and applied >= d.desired_version,
                last_sequence=d.last_sequence,
                is_online=presence(d.name) if presence is not None else None,
            )
        )
    return rows


def _update_state(reported: dict[str, Any] | None, key: str) -> str | None:
    state = ((reported or {}).get(key) or {}).get("state")
    return state if isinstance(state, str) else None


@dataclass(frozen=True, slots=True)
class Chart:
    """One channel's sparkline, already laid out in SVG user units."""

    channel: str
    width: int
    height: int
    line: str
    """polyline points of the means."""
    band: str
    """polygon points of the min–max band."""
    low: float
    high: float
    last: float
    points: int


def draw_chart(
    channel: str,
    records: list[tuple[float, float, float, float]],
    width: int = 240,
    height: int = 48,
) -> Chart:
    """Lay out (start, min, mean, max) records, ascending by start, as SVG points.

    The y range covers every min and max; a flat series sits in the middle.
    """
    starts = [r[0] for r in records]
    lows = [r[1] for r in records]
    highs = [r[3] for r in records]
    frame = PlotFrame(min(starts), max(starts), min(lows), max(highs), width, height, pad=2.0)
    line = frame.points([(t, m) for t, _, m, _ in records])
    band = frame.points(
        [(t, hi) for t, _, _, hi in records] + [(t, lo) for t, lo, _, _ in reversed(records)]
    )
    last_mean = records[-1][2]
    return Chart(channel, width, height, line, band, frame.y0, frame.y1, last_mean, len(records))


def charts(engine: Engine, fleet: FleetSection) -> dict[str, list[Chart]]:
    """Per device name, a chart for each of its first ``chart_channels`` channels."""
    out: dict[str, list[Chart]] = {}
    with engine.connect() as conn:
        pairs = conn.execute(
            select(Device.name, StoredSummary.device_id, StoredSummary.channel)
            .join(Device, Device.id == StoredSummary.device_id)
            .distinct()
            .order_by(Device.name, StoredSummary.channel)
        ).all()
        for name, device_id, channel in pairs:
            drawn = out.setdefault(name, [])
            if len(drawn) >= fleet.chart_channels:
                continue
            records = conn.execute(
                select(
                    StoredSummary.start, StoredSummary.min, StoredSummary.mean, StoredSummary.max
                )
                .where(StoredSummary.device_id == device_id, StoredSummary.channel == channel)
                .order_by(StoredSummary.start.desc())
                .limit(fleet.chart_points)
            ).all()
            drawn.append(draw_chart(channel, [(r[0], r[1], r[2], r[3]) for r in reversed(records)]))
    return out


@dataclass(frozen=True, slots=True)
class OpenAlarm:
    """One alarm of the fleet that is not cleared (as the device last reported it)."""

    device: str
    alarm_id: int
    severity: str
    state: str
    rule: str
    channel: str
    message: str
    raised_at: float | None
    reason: ReasonView | None
    """Why it was raised (None: sent by a device from before reasons)."""


def open_alarms(engine: Engine, limit: int = 100) -> list[OpenAlarm]:
    """Alarms not cleared, critical first, then newest first; at most ``limit``."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                Device.name,
                StoredAlarm.alarm_id,
                StoredAlarm.severity,
                StoredAlarm.state,
                StoredAlarm.alarm,
            )
            .join(Device, Device.id == StoredAlarm.device_id)
            .where(StoredAlarm.state != "cleared")
            .order_by(StoredAlarm.updated_ts.desc())
            .limit(limit)
        ).all()
    alarms = [
        OpenAlarm(
            device=name,
            alarm_id=alarm_id,
            severity=severity,
            state=state,
            rule=str(body.get("rule", "")),
            channel=str(body.get("channel", "")),
            message=str(body.get("message", "")),
            raised_at=body.get("raised_at"),
            reason=reason_view(body.get("reason")),
        )
        for name, alarm_id, severity, state, body in rows
    ]
    alarms.sort(key=lambda a: a.severity != "critical")  # stable: newest first within
    return alarms


@dataclass(frozen=True, slots=True)
class RolloutRow:
    """A release on the fleet page: its state and how its devices stand."""

    release: ReleaseInfo
    devices: dict[str, int]
    """Assignment status -> number of devices (offered, installed, rejected, ...)."""


def rollouts(engine: Engine, limit: int = 20) -> list[RolloutRow]:
    """The newest ``limit`` releases with their assignment counts."""
    releases = list_releases(engine)[:limit]
    with engine.connect() as conn:
        counts = conn.execute(
            select(ReleaseAssignment.release_id, ReleaseAssignment.status, func.count()).group_by(
                ReleaseAssignment.release_id, ReleaseAssignment.status
            )
        ).all()
    by_release: dict[int, dict[str, int]] = {}
    for release_id, status, n in counts:
        by_release.setdefault(release_id, {})[status] = n
    return [RolloutRow(r, by_release.get(r.id, {})) for r in releases]


@dataclass(frozen=True, slots=True)
class SlotView:
    """A device's model or twin on the fleet page: what it runs, what it is asked for
    and where the update stands."""

    reported: str | None
    """Version in service (None: none reported)."""
    desired: str | None
    """Version the desired state asks for (None: any, the device's own)."""
    update: str | None
    """e.g. "guarding 1.1.0", "rolled back 1.1.0: MAE 0.4 > 0.2"; None: idle or none."""
    is_pending: bool
    """A version is asked for that the device neither runs nor reports an update of."""


def release_slots(engine: Engine) -> dict[str, dict[str, SlotView]]:
    """Per device name, its "model" and its "twin" slot (docs/releases.md)."""
    with engine.connect() as conn:
        rows = conn.execute(select(Device.name, Device.desired, Device.reported)).all()
    out: dict[str, dict[str, SlotView]] = {}
    for name, desired, reported in rows:
        views = {}
        for slot in ("model", "twin"):
            running = ((reported or {}).get(slot) or {}).get("version")
            wanted = (desired or {}).get(f"{slot}_version")
            report = (reported or {}).get(f"{slot}_update")
            about = report.get("version") if isinstance(report, dict) else None
            views[slot] = SlotView(
                reported=running,
                desired=wanted,
                update=_update_text(report),
                is_pending=wanted is not None and wanted not in (running, about),
            )
        out[name] = views
    return out


def _update_text(report: Any) -> str | None:
    if not isinstance(report, dict) or report.get("state") in (None, "idle"):
        return None
    text = str(report["state"]).replace("_", " ")
    if report.get("version"):
        text += f" {report['version']}"
    if report.get("reason") and report["state"] in ("rejected", "rolled_back"):
        text += f": {report['reason']}"
    return text


def forecast_horizons(engine: Engine) -> dict[str, str]:
    """Per device name, how far its forecasts reach in time, from what it reports per
    channel (``horizon_s``, ``model_period_s``): "up to 16 min (60 s period)". Devices
    that report no horizon in time are left out."""
    with engine.connect() as conn:
        rows = conn.execute(select(Device.name, Device.reported)).all()
    out: dict[str, str] = {}
    for name, reported in rows:
        channels = (reported or {}).get("channels") or {}
        reach: list[float] = []
        periods: set[float] = set()
        for info in channels.values():
            if not isinstance(info, dict):
                continue
            horizons = info.get("horizon_s")
            if isinstance(horizons, list) and horizons:
                reach.append(max(float(h) for h in horizons))
            period = info.get("model_period_s")
            if isinstance(period, int | float):
                periods.add(float(period))
        if reach:
            per = ", ".join(f"{duration_text(p)}" for p in sorted(periods))
            out[name] = f"up to {duration_text(max(reach))}" + (f" ({per} period)" if per else "")
    return out


def make_environment() -> Environment:
    return Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render_fleet_page(
    env: Environment,
    engine: Engine,
    fleet: FleetSection,
    version: str,
    presence: PresenceLookup | None = None,
) -> str:
    now = time.time()
    return env.get_template("fleet.html").render(
        devices=overview(engine, fleet, now, presence),
        charts=charts(engine, fleet),
        slots=release_slots(engine),
        horizons=forecast_horizons(engine),
        rollouts=rollouts(engine),
        alarms=open_alarms(engine),
        now=now,
        version=version,
        ago=_ago,
    )


def render_login_page(env: Environment, message: str | None, version: str) -> str:
    return env.get_template("login.html").render(message=message, version=version)


def _ago(then: float | None, now: float) -> str:
    if then is None:
        return "never"
    seconds = max(0.0, now - then)
    for unit, size in (("d", 86_400), ("h", 3_600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f} {unit} ago"
    return f"{seconds:.0f} s ago"
