"""Alarm events built the way the alarm engine builds them (a snapshot after each change)."""

from __future__ import annotations

from dataclasses import replace

from edge_agent.alarms.model import Alarm, AlarmEvent, AlarmEventKind, AlarmState, Severity


def raised(alarm_id: int, ts: float, channel: str = "bearing_temp") -> AlarmEvent:
    alarm = Alarm(
        id=alarm_id,
        rule="hot_bearing",
        channel=channel,
        kind="value_above",
        severity=Severity.CRITICAL,
        state=AlarmState.ACTIVE_UNACKNOWLEDGED,
        raised_at=ts,
        value=91.5,
        message="bearing above 90 °C",
    )
    return AlarmEvent(AlarmEventKind.RAISED, ts, alarm)


def acked(event: AlarmEvent, ts: float, by: str = "operator") -> AlarmEvent:
    alarm = replace(event.alarm, state=AlarmState.ACTIVE_ACKNOWLEDGED, acked_at=ts, acked_by=by)
    return AlarmEvent(AlarmEventKind.ACKNOWLEDGED, ts, alarm)


def cleared(event: AlarmEvent, ts: float) -> AlarmEvent:
    alarm = replace(event.alarm, state=AlarmState.CLEARED, cleared_at=ts)
    return AlarmEvent(AlarmEventKind.CLEARED, ts, alarm)
