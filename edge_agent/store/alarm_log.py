"""The alarm tables: ``alarms`` (the current state of each alarm, upserted by every event)
and ``alarm_events`` (the append-only history), and their rows mapped back to the alarm
engine's objects."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any

from edge_agent.alarms.model import Alarm, AlarmEvent, AlarmEventKind, AlarmState, Severity
from edge_agent.alarms.reason import AlarmReason
from edge_agent.store import meta
from edge_agent.store.outbox import payload_text

ALARM_COLUMNS = (
    "id, rule, channel, kind, severity, state, raised_at, value, message,"
    " acked_at, acked_by, cleared_at, reason"
)
"""The ``alarms`` columns that ``alarm_from_row`` reads, in its order."""


def record_alarm_events(conn: sqlite3.Connection, events: Iterable[AlarmEvent]) -> list[str]:
    """Upsert each event's alarm, append the event to the history and raise
    ``max_alarm_id``; inside the caller's transaction. Returns each event's payload
    (``AlarmEvent.to_dict()`` as JSON), in order. Raises sqlite3.Error."""
    payloads: list[str] = []
    max_alarm_id = 0
    for event in events:
        alarm = event.alarm
        conn.execute(
            f"INSERT OR REPLACE INTO alarms ({ALARM_COLUMNS})"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            _alarm_row(alarm),
        )
        payload = payload_text(event.to_dict())
        conn.execute(
            "INSERT INTO alarm_events (alarm_id, kind, ts, payload) VALUES (?, ?, ?, ?)",
            (alarm.id, str(event.kind), event.ts, payload),
        )
        payloads.append(payload)
        max_alarm_id = max(max_alarm_id, alarm.id)
    if payloads:
        meta.raise_int(conn, meta.MAX_ALARM_ID_KEY, max_alarm_id)
    return payloads


def _alarm_row(a: Alarm) -> tuple[Any, ...]:
    return (
        a.id,
        a.rule,
        a.channel,
        a.kind,
        str(a.severity),
        str(a.state),
        a.raised_at,
        a.value,
        a.message,
        a.acked_at,
        a.acked_by,
        a.cleared_at,
        None if a.reason is None else payload_text(a.reason.to_dict()),
    )


def alarm_from_row(row: Sequence[Any]) -> Alarm:
    """The Alarm of a row selected as ``ALARM_COLUMNS``."""
    (aid, rule, channel, kind, severity, state, raised_at, value, message) = row[:9]
    acked_at, acked_by, cleared_at, reason = row[9:]
    return Alarm(
        id=int(aid),
        rule=rule,
        channel=channel,
        kind=kind,
        severity=Severity(severity),
        state=AlarmState(state),
        raised_at=raised_at,
        value=value,
        message=message,
        acked_at=acked_at,
        acked_by=acked_by,
        cleared_at=cleared_at,
        reason=None if reason is None else AlarmReason.from_dict(json.loads(reason)),
    )


def event_from_payload(payload: str) -> AlarmEvent:
    """The AlarmEvent of a stored payload (``AlarmEvent.to_dict()`` as JSON)."""
    data = json.loads(payload)
    a = dict(data["alarm"])
    a["severity"] = Severity(a["severity"])
    a["state"] = AlarmState(a["state"])
    reason = a.get("reason")
    a["reason"] = None if reason is None else AlarmReason.from_dict(reason)
    return AlarmEvent(kind=AlarmEventKind(data["kind"]), ts=data["ts"], alarm=Alarm(**a))
