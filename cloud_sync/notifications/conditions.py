"""The conditions that hold now, read from the database.

- ``device_stale:<device>``: a device that sent batches before has sent none for longer
  than [fleet] stale_after_s; clears with its next batch.
- ``fleet_alarm:<device>:<alarm id>``: an alarm of a device (its detail: the alarm's
  reason, as the device sent it), of a severity listed in
  [notifications] alarm_severities, not cleared; clears when the device reports it
  cleared.
- ``rollout_stopped:<release id>``: a release stopped (a canary refused it, or an admin);
  a stopped release never resumes, so this one does not clear.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, select

from cloud_sync.db.models import Device, Release, StoredAlarm
from cloud_sync.releases.model import ReleaseState


@dataclass(frozen=True, slots=True)
class Condition:
    """One thing worth telling someone while it lasts."""

    key: str
    """Unique while the condition lasts, e.g. ``device_stale:pump-1``."""
    kind: str
    """device_stale, fleet_alarm, rollout_stopped."""
    message: str
    """One sentence for a person."""
    detail: dict[str, Any] = field(default_factory=dict)


def current_conditions(
    conn: Connection,
    now: float,
    *,
    stale_after_s: float,
    events: Collection[str],
    alarm_severities: Collection[str],
) -> dict[str, Condition]:
    """Every condition of the kinds in ``events`` that holds at ``now`` (UNIX s), by key."""
    found: list[Condition] = []
    if "device_stale" in events:
        found += _stale_devices(conn, now, stale_after_s)
    if "fleet_alarm" in events:
        found += _fleet_alarms(conn, alarm_severities)
    if "rollout_stopped" in events:
        found += _stopped_rollouts(conn)
    return {c.key: c for c in found}


def _stale_devices(conn: Connection, now: float, stale_after_s: float) -> list[Condition]:
    rows = conn.execute(
        select(Device.name, Device.last_seen).where(
            Device.last_seen.is_not(None), Device.last_seen < now - stale_after_s
        )
    ).all()
    return [
        Condition(
            key=f"device_stale:{name}",
            kind="device_stale",
            message=f"device {name} has sent nothing for {now - (last_seen or now):.0f} s "
            f"(stale after {stale_after_s:.0f} s)",
            detail={"device": name, "last_seen": last_seen, "stale_after_s": stale_after_s},
        )
        for name, last_seen in rows
    ]


def _fleet_alarms(conn: Connection, severities: Collection[str]) -> list[Condition]:
    rows = conn.execute(
        select(Device.name, StoredAlarm.alarm_id, StoredAlarm.severity, StoredAlarm.alarm)
        .join(Device, Device.id == StoredAlarm.device_id)
        .where(StoredAlarm.state != "cleared", StoredAlarm.severity.in_(list(severities)))
    ).all()
    return [
        Condition(
            key=f"fleet_alarm:{name}:{alarm_id}",
            kind="fleet_alarm",
            message=f"{severity} alarm on {name}: {alarm.get('message', '')}",
            detail={
                "device": name,
                "alarm_id": alarm_id,
                "severity": severity,
                "rule": alarm.get("rule"),
                "channel": alarm.get("channel"),
                "raised_at": alarm.get("raised_at"),
                "reason": alarm.get("reason"),
            },
        )
        for name, alarm_id, severity, alarm in rows
    ]


def _stopped_rollouts(conn: Connection) -> list[Condition]:
    rows = conn.execute(
        select(Release.id, Release.kind, Release.model_name, Release.version, Release.reason).where(
            Release.state == ReleaseState.STOPPED.value
        )
    ).all()
    return [
        Condition(
            key=f"rollout_stopped:{release_id}",
            kind="rollout_stopped",
            message=f"rollout of {kind} {model} {version} stopped: {reason or 'no reason given'}",
            detail={
                "release_id": release_id,
                "kind": kind,
                "model": model,
                "version": version,
                "reason": reason,
            },
        )
        for release_id, kind, model, version, reason in rows
    ]
