"""The alarms as the agent shows them: to the HTTP API (with or without their reasons)
and to the cloud in the reported state (without: the reason travels in the events)."""

from __future__ import annotations

from edge_agent.alarms.engine import AlarmEngine
from edge_agent.alarms.model import Alarm
from edge_agent.errors import AlarmNotFound
from edge_agent.http.status import AlarmInfo
from edge_agent.store.sqlite import Store
from edgetwin_contracts.batch import AlarmRecord


def alarm_info(alarm: Alarm) -> AlarmInfo:
    return AlarmInfo(**alarm.to_dict())


def alarm_list(
    engine: AlarmEngine, store: Store, active_only: bool, limit: int, reasons: bool
) -> list[AlarmInfo]:
    """The active alarms (from the engine), or the newest ``limit`` (from the store);
    ``reasons`` False leaves each reason out (a page polling hundreds of alarms)."""
    if active_only:
        found = engine.active()[:limit]
    else:
        store.flush()
        found = store.alarms(active_only=False, limit=limit)
    if not reasons:
        for a in found:  # snapshots and fresh rows: ours to change
            a.reason = None
    return [alarm_info(a) for a in found]


def alarm_by_id(engine: AlarmEngine, store: Store, alarm_id: int) -> AlarmInfo:
    """One alarm with its reason: open ones from the engine, closed ones from the store.
    Raises AlarmNotFound."""
    try:
        return alarm_info(engine.get(alarm_id))
    except AlarmNotFound:
        store.flush()
        return alarm_info(store.alarm(alarm_id))


def reported_alarm(alarm: Alarm) -> AlarmRecord:
    """An open alarm for the reported state, without its reason: the reason travels once,
    in the alarm's events (a report lists up to a thousand open alarms, every batch)."""
    alarm.reason = None  # a snapshot: ours to change
    return AlarmRecord.model_validate(alarm.to_dict())
