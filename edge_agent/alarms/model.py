"""Alarm records, the events that move them through their states, and who receives them.

States follow the usual operator model (ISA-18.2, simplified):

    (normal) --raise--> active_unacknowledged --ack--> active_acknowledged
    active_* --clear--> cleared      (an unacknowledged alarm that clears stays visible as
                                      cleared with acked_at None, and can still be acknowledged)
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

from edge_agent.alarms.reason import AlarmReason


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


class HealthCondition(StrEnum):
    """What can be wrong with a channel (health rules watch these; docs/alarms.md)."""

    STALE = "stale"
    STUCK = "stuck"
    DISCONNECTED = "disconnected"


class AlarmState(StrEnum):
    ACTIVE_UNACKNOWLEDGED = "active_unacknowledged"
    ACTIVE_ACKNOWLEDGED = "active_acknowledged"
    CLEARED = "cleared"

    @property
    def is_active(self) -> bool:
        return self is not AlarmState.CLEARED


class AlarmEventKind(StrEnum):
    RAISED = "raised"
    ACKNOWLEDGED = "acknowledged"
    CLEARED = "cleared"


@dataclass(slots=True)
class Alarm:
    """One occurrence of a rule firing on a channel (deduplicated: at most one active
    alarm per (rule, channel)). Times are UNIX seconds."""

    id: int
    rule: str
    channel: str
    kind: str
    """The rule's type (value_above, forecast_above, health, ...; "internal" for the
    agent's own alarms)."""
    severity: Severity
    state: AlarmState
    raised_at: float
    value: float | None
    """The reading, forecast, score or rate that raised it (None for health alarms)."""
    message: str
    acked_at: float | None = None
    acked_by: str | None = None
    cleared_at: float | None = None
    reason: AlarmReason | None = None
    """Why it was raised (alarms/reason.py); None for alarms stored before reasons."""

    def snapshot(self) -> Alarm:
        """A copy (every field is immutable, so a shallow one is whole). Spelled out: it
        is about seven times faster than ``dataclasses.replace`` and every event takes one."""
        return Alarm(
            self.id,
            self.rule,
            self.channel,
            self.kind,
            self.severity,
            self.state,
            self.raised_at,
            self.value,
            self.message,
            self.acked_at,
            self.acked_by,
            self.cleared_at,
            self.reason,
        )

    def to_dict(self) -> dict[str, Any]:
        """The fields in order, enums as their values (JSON-ready). Spelled out rather than
        ``dataclasses.asdict``, which deep-copies every field: every alarm event written
        to the store goes through here."""
        return {
            "id": self.id,
            "rule": self.rule,
            "channel": self.channel,
            "kind": self.kind,
            "severity": self.severity.value,
            "state": self.state.value,
            "raised_at": self.raised_at,
            "value": self.value,
            "message": self.message,
            "acked_at": self.acked_at,
            "acked_by": self.acked_by,
            "cleared_at": self.cleared_at,
            "reason": None if self.reason is None else self.reason.to_dict(),
        }


@dataclass(frozen=True, slots=True)
class AlarmEvent:
    """A state change of an alarm, with a snapshot of the alarm after the change."""

    kind: AlarmEventKind
    ts: float
    alarm: Alarm

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind.value, "ts": self.ts, "alarm": self.alarm.to_dict()}


class Notifiable(Protocol):
    """The one thing the alarm engine needs of an action (``edge_agent.actions.base.Action``):
    take an event, at once, without raising."""

    def notify(self, event: AlarmEvent) -> None: ...
