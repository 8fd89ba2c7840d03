"""The open alarms: the ones still needing attention (active, or cleared and not yet
acknowledged), the ids they get, the recent events, and the delivery of every change as
an ``AlarmEvent``: to the sink (the store persists it), then to the alarm's actions.

The alarm engine owns one; it decides when a rule raises or clears, the ledger what an
alarm's states are (docs/alarms.md, "States and deduplication").
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from heapq import heappop, heappush

from edge_agent.alarms.model import (
    Alarm,
    AlarmEvent,
    AlarmEventKind,
    AlarmState,
    Notifiable,
    Severity,
)
from edge_agent.alarms.reason import AlarmReason
from edge_agent.errors import AlarmNotFound

INTERNAL_KIND = "internal"
"""The kind of alarms the agent raises about itself (``raise_internal``)."""


class _Open:
    """An alarm still tracked, with the actions its events go to."""

    __slots__ = ("actions", "alarm")

    def __init__(self, alarm: Alarm, actions: tuple[Notifiable, ...]) -> None:
        self.alarm = alarm
        self.actions = actions


class AlarmLedger:
    """Keeps open alarms and emits their events.

    sink: receives every AlarmEvent; must not block or raise (nor must the actions).
    next_id: the first alarm id to hand out (``skip_id`` raises it).
    max_cleared_unacknowledged: cleared alarms awaiting acknowledgement kept here; past
        it the oldest is forgotten (it stays in the store) and counted.
    recent_max: events kept for ``recent``. Not thread-safe.
    """

    def __init__(
        self,
        sink: Callable[[AlarmEvent], None],
        next_id: int = 1,
        *,
        max_cleared_unacknowledged: int = 1000,
        recent_max: int = 200,
    ) -> None:
        self._sink = sink
        self._next_id = next_id
        self._max_cleared_unacked = max_cleared_unacknowledged
        self._open: dict[int, _Open] = {}
        # Ids of the cleared, unacknowledged alarms in _open, as a heap: ids grow in the
        # order _open holds the alarms, so the smallest is the oldest and the cap costs
        # O(log n) per clear instead of a scan of every open alarm. An id acknowledged
        # since is skipped when it surfaces.
        self._cleared_ids: list[int] = []
        self._cleared_count = 0
        self._recent: deque[AlarmEvent] = deque(maxlen=recent_max)
        self.counters: dict[str, int] = {
            "raised": 0,
            "acknowledged": 0,
            "cleared": 0,
            "forgotten": 0,
        }
        """Events emitted by kind, and cleared-unacknowledged alarms forgotten (memory cap)."""

    @property
    def next_id(self) -> int:
        """The id the next alarm will get."""
        return self._next_id

    def skip_id(self, alarm_id: int) -> None:
        """Hand out only ids above ``alarm_id`` from now on (an alarm from before a restart)."""
        self._next_id = max(self._next_id, alarm_id + 1)

    def keep(self, alarm: Alarm, actions: tuple[Notifiable, ...]) -> Alarm:
        """Track an open alarm from before a restart (no event); returns the tracked copy."""
        alarm = alarm.snapshot()
        self._open[alarm.id] = _Open(alarm, actions)
        if alarm.state is AlarmState.CLEARED:
            heappush(self._cleared_ids, alarm.id)
            self._cleared_count += 1
        return alarm

    def actions_of(self, alarm: Alarm) -> tuple[Notifiable, ...]:
        """The actions a tracked alarm's events go to."""
        return self._open[alarm.id].actions

    def open(
        self,
        rule: str,
        channel: str,
        kind: str,
        severity: Severity,
        ts: float,
        value: float | None,
        message: str,
        actions: tuple[Notifiable, ...],
        reason: AlarmReason | None = None,
    ) -> Alarm:
        """A new active alarm with the next id, tracked and counted; the caller then
        ``emit``s its RAISED event (once its own state shows the alarm)."""
        alarm = Alarm(
            id=self._next_id,
            rule=rule,
            channel=channel,
            kind=kind,
            severity=severity,
            state=AlarmState.ACTIVE_UNACKNOWLEDGED,
            raised_at=ts,
            value=value,
            message=message,
            reason=reason,
        )
        self._next_id += 1
        self._open[alarm.id] = _Open(alarm, actions)
        self.counters["raised"] += 1
        return alarm

    def close(self, alarm: Alarm, ts: float, actions: tuple[Notifiable, ...]) -> None:
        """Clear a tracked active alarm at ``ts`` and emit the event. An acknowledged one is
        done; an unacknowledged one stays until acknowledged (or the cap forgets it)."""
        alarm.state = AlarmState.CLEARED
        alarm.cleared_at = ts
        if alarm.acked_at is not None:
            del self._open[alarm.id]
        else:
            heappush(self._cleared_ids, alarm.id)
            self._cleared_count += 1
            self._forget_beyond_cap()
        self.counters["cleared"] += 1
        self.emit(AlarmEventKind.CLEARED, ts, alarm, actions)

    def raise_internal(
        self, name: str, channel: str, ts: float, message: str, severity: Severity
    ) -> Alarm:
        """See ``AlarmEngine.raise_internal``."""
        for entry in self._open.values():
            a = entry.alarm
            if a.rule == name and a.channel == channel and a.state.is_active:
                return a.snapshot()
        reason = AlarmReason(rule=name, trigger=INTERNAL_KIND, top_channel=channel)
        alarm = self.open(name, channel, INTERNAL_KIND, severity, ts, None, message, (), reason)
        self.emit(AlarmEventKind.RAISED, ts, alarm, ())
        return alarm.snapshot()

    def clear_internal(self, name: str, channel: str, ts: float) -> None:
        """Clear the active internal alarm (name, channel), if any."""
        for entry in list(self._open.values()):
            a = entry.alarm
            is_it = a.kind == INTERNAL_KIND and a.rule == name and a.channel == channel
            if is_it and a.state.is_active:
                self.close(a, ts, ())

    def acknowledge(self, alarm_id: int, ts: float, by: str = "") -> Alarm:
        """See ``AlarmEngine.acknowledge``. Raises AlarmNotFound."""
        entry = self._open.get(alarm_id)
        if entry is None:
            raise AlarmNotFound(alarm_id)
        alarm = entry.alarm
        if alarm.acked_at is not None:
            return alarm.snapshot()
        alarm.acked_at = ts
        alarm.acked_by = by or None
        if alarm.state is AlarmState.CLEARED:
            del self._open[alarm_id]
            self._cleared_count -= 1
        else:
            alarm.state = AlarmState.ACTIVE_ACKNOWLEDGED
        self.counters["acknowledged"] += 1
        return self.emit(AlarmEventKind.ACKNOWLEDGED, ts, alarm, entry.actions).alarm

    def get(self, alarm_id: int) -> Alarm:
        """A snapshot of an open alarm. Raises AlarmNotFound."""
        entry = self._open.get(alarm_id)
        if entry is None:
            raise AlarmNotFound(alarm_id)
        return entry.alarm.snapshot()

    def active(self) -> list[Alarm]:
        """Snapshots of the active alarms (acknowledged or not), oldest first."""
        return [e.alarm.snapshot() for e in self._open.values() if e.alarm.state.is_active]

    def open_alarms(self) -> list[Alarm]:
        """Snapshots of every open alarm, oldest first."""
        return [e.alarm.snapshot() for e in self._open.values()]

    def recent(self, limit: int = 50) -> list[AlarmEvent]:
        """The last ``limit`` events (at most ``recent_max``), newest first."""
        out: list[AlarmEvent] = []
        for event in reversed(self._recent):
            if len(out) >= limit:
                break
            out.append(event)
        return out

    def emit(
        self, kind: AlarmEventKind, ts: float, alarm: Alarm, actions: tuple[Notifiable, ...]
    ) -> AlarmEvent:
        """Hand the event (with a snapshot of ``alarm``) to the sink, then to ``actions``."""
        event = AlarmEvent(kind, ts, alarm.snapshot())  # a snapshot: later changes don't leak
        self._recent.append(event)
        self._sink(event)
        for action in actions:
            action.notify(event)
        return event

    def _forget_beyond_cap(self) -> None:
        while self._cleared_count > self._max_cleared_unacked:
            alarm_id = heappop(self._cleared_ids)
            entry = self._open.get(alarm_id)
            if entry is None or entry.alarm.state is not AlarmState.CLEARED:
                continue  # acknowledged since
            del self._open[alarm_id]
            self._cleared_count -= 1
            self.counters["forgotten"] += 1
