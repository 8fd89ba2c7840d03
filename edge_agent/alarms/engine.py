"""The alarm engine: evaluates the configured rules on every processed sample.

One engine for the whole agent. Per (rule, channel) it keeps one slot: the active alarm
(at most one: deduplication), and the times at which the set or the clear condition
started to hold (on-delay, off-delay). Times are the samples' own timestamps (UNIX
seconds), so a replay behaves exactly like the live run.

Levels and hysteresis (``set`` / ``clear``; clear defaults to set):

    value_above, score_above, rate_above, forecast_above:  set at m >= set, clear at m < clear
    value_below, forecast_below:                           set at m <= set, clear at m > clear

where m is the reading, the anomaly score, |rate|, or the max (min) of the forecasts
over the selected horizons. Health rules set while any of their conditions holds.

Every raise, acknowledge and clear becomes an ``AlarmEvent``: handed to ``sink`` (the
store persists it) and to each of the rule's actions, in that order. Neither may block
or raise. See docs/alarms.md.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from enum import IntEnum
from typing import Any

import numpy as np
import numpy.typing as npt
from pydantic import ValidationError

from edge_agent.actions.base import Notifiable
from edge_agent.alarms.model import Alarm, AlarmEvent, AlarmEventKind, AlarmState
from edge_agent.alarms.rules import (
    AlarmRule,
    ForecastRule,
    HealthCondition,
    HealthRule,
    Severity,
    ThresholdRule,
)
from edge_agent.errors import AlarmNotFound
from edgetwin_common.errors import ConfigInvalid, ConfigProblem

ALL_CHANNELS = "*"
INTERNAL_KIND = "internal"
"""The kind of alarms the agent raises about itself (``raise_internal``)."""

OVERRIDABLE_FIELDS = frozenset({"set", "clear", "on_delay_s", "off_delay_s", "severity"})
"""What ``AlarmEngine.override_rules`` may change on a rule: levels, delays, severity."""

_SEVERITY_RANK = {Severity.INFO: 0, Severity.WARNING: 1, Severity.CRITICAL: 2}


class _Metric(IntEnum):
    VALUE = 0
    RATE = 1
    SCORE = 2
    FORECAST_MAX = 3
    FORECAST_MIN = 4


_METRIC_OF_KIND = {
    "value_above": (_Metric.VALUE, 1.0),
    "value_below": (_Metric.VALUE, -1.0),
    "rate_above": (_Metric.RATE, 1.0),
    "score_above": (_Metric.SCORE, 1.0),
    "forecast_above": (_Metric.FORECAST_MAX, 1.0),
    "forecast_below": (_Metric.FORECAST_MIN, -1.0),
}
"""Rule kind → (what is measured, sign). "below" rules are evaluated on -m against -set
and -clear so that one comparison serves both directions."""


class _Open:
    """An alarm the engine still tracks (active, or cleared but not yet acknowledged)."""

    __slots__ = ("actions", "alarm")

    def __init__(self, alarm: Alarm, actions: tuple[Notifiable, ...]) -> None:
        self.alarm = alarm
        self.actions = actions


class _Slot:
    """The state of one rule on one channel."""

    __slots__ = (
        "actions",
        "alarm",
        "channel",
        "clear_level",
        "clearing_since",
        "conditions",
        "metric",
        "off_delay",
        "on_delay",
        "pending_since",
        "rule",
        "selection",
        "set_level",
        "sign",
    )

    def __init__(
        self,
        rule: ThresholdRule | ForecastRule | HealthRule,
        channel: str,
        actions: tuple[Notifiable, ...],
        selection: slice | npt.NDArray[np.intp] | None,
    ) -> None:
        self.rule = rule
        self.channel = channel
        self.actions = actions
        self.selection = selection
        self.alarm: Alarm | None = None
        self.pending_since: float | None = None
        self.clearing_since: float | None = None
        self.conditions: frozenset[HealthCondition] = frozenset()
        self.metric = _Metric.VALUE
        self.sign = 1.0
        self.set_level = 0.0
        self.clear_level = 0.0
        self.use(rule)

    def use(self, rule: ThresholdRule | ForecastRule | HealthRule) -> None:
        """Take levels, delays and severity from ``rule`` (same name and kind); the
        state (active alarm, pending and clearing times) is kept."""
        self.rule = rule
        self.on_delay = rule.on_delay_s
        self.off_delay = rule.off_delay_s
        if isinstance(rule, HealthRule):
            self.conditions = frozenset(rule.conditions)
        else:
            self.metric, self.sign = _METRIC_OF_KIND[rule.kind]
            clear = rule.set if rule.clear is None else rule.clear
            self.set_level = self.sign * rule.set
            self.clear_level = self.sign * clear


class AlarmEngine:
    """Evaluates alarm rules; keeps active and unacknowledged alarms; emits events.

    rules: the [[alarms]] of the config (channel "*" applies a rule to every channel).
    horizons: the model's forecast horizons in samples ahead, one per forecast value.
    sink: receives every AlarmEvent (the store persists them); must not block or raise.
    actions: every configured action by name (with the implicit "log").
    next_id: first alarm id to hand out (the store's highest id + 1); raised to above
        any restored id.
    restored: open alarms from the store after a restart (active, or cleared and not
        acknowledged). Active ones take their slot again, so the condition still holding
        does not raise a second alarm. An active alarm whose rule no longer exists (or no
        longer covers its channel) is cleared at the first sample or health report of
        its channel.
    max_cleared_unacknowledged: cleared alarms awaiting acknowledgement kept in memory;
        past it the oldest is forgotten here (it stays in the store) and counted.

    Raises ConfigInvalid when a rule names an unknown action, two rules share a name, or a
    forecast rule selects none of the model's horizons. Not thread-safe: call every
    method from the pipeline's event loop.
    """

    def __init__(
        self,
        rules: Sequence[AlarmRule],
        horizons: Sequence[int],
        sink: Callable[[AlarmEvent], None],
        actions: Mapping[str, Notifiable],
        next_id: int = 1,
        restored: Iterable[Alarm] = (),
        *,
        max_cleared_unacknowledged: int = 1000,
        recent_max: int = 200,
    ) -> None:
        self._sink = sink
        self._horizons = tuple(horizons)
        self._max_cleared_unacked = max_cleared_unacknowledged
        self._rules: dict[str, ThresholdRule | ForecastRule | HealthRule] = {}
        self._configured: dict[str, ThresholdRule | ForecastRule | HealthRule] = {}
        self._rule_actions: dict[str, tuple[Notifiable, ...]] = {}
        self._selections: dict[str, slice | npt.NDArray[np.intp] | None] = {}
        problems: list[ConfigProblem] = []
        for i, rule in enumerate(rules):
            if rule.name in self._rules:
                problems.append(ConfigProblem(f"alarms.{i}.name", rule.name, "used twice"))
            self._rules[rule.name] = rule
            found: list[Notifiable] = []
            for name in rule.actions:
                if name in actions:
                    found.append(actions[name])
                else:
                    known = ", ".join(sorted(actions))
                    problems.append(
                        ConfigProblem(
                            f"alarms.{i}.actions", name, f"unknown action (known: {known})"
                        )
                    )
            self._rule_actions[rule.name] = tuple(found)
            if isinstance(rule, ForecastRule):
                self._selections[rule.name] = self._select(rule, i, problems)
        if problems:
            raise ConfigInvalid("alarms", problems)
        self._configured = dict(self._rules)
        # Rules pre-indexed by channel; the slots of a channel are built at its first
        # sample, so "*" rules cover channels that nobody listed.
        self._exact: dict[str, list[ThresholdRule | ForecastRule | HealthRule]] = {}
        self._star: list[ThresholdRule | ForecastRule | HealthRule] = []
        for rule in rules:
            if rule.channel == ALL_CHANNELS:
                self._star.append(rule)
            else:
                self._exact.setdefault(rule.channel, []).append(rule)
        self._sample_slots: dict[str, list[_Slot]] = {}
        self._health_slots: dict[str, list[_Slot]] = {}
        self._channel_state: dict[str, str] = {}
        self._open: dict[int, _Open] = {}
        self._recent: deque[AlarmEvent] = deque(maxlen=recent_max)
        self._restored_active: dict[tuple[str, str], Alarm] = {}
        self._orphans: dict[str, list[Alarm]] = {}
        self.counters: dict[str, int] = {
            "raised": 0,
            "acknowledged": 0,
            "cleared": 0,
            "forgotten": 0,
        }
        """Events emitted by kind, and cleared-unacknowledged alarms forgotten (memory cap)."""
        self._next_id = next_id
        for alarm in sorted(restored, key=lambda a: a.id):
            self._next_id = max(self._next_id, alarm.id + 1)
            self._restore(alarm)

    # -- the per-sample path -------------------------------------------------------------

    def on_sample(
        self,
        channel: str,
        ts: float,
        value: float,
        forecast: npt.NDArray[np.float64] | None = None,
        score: float | None = None,
        rate: float | None = None,
    ) -> None:
        """Evaluate the channel's value, forecast, score and rate rules on one processed
        sample.

        ts: UNIX seconds (drives on/off delays). value: the reading, channel units.
        forecast: one value per horizon (the engine's ``horizons``), channel units; None
            while the window is filling. score: the anomaly score (None during warm-up).
        rate: Δvalue/Δt between the last two processed samples, units per second (None
            for the first sample of a window). A rule whose input is None keeps its state.
        """
        slots = self._sample_slots.get(channel)
        if slots is None:
            slots = self._add_channel(channel, ts)
        for slot in slots:
            metric = slot.metric
            m: float
            if metric is _Metric.VALUE:
                m = value
            elif metric is _Metric.SCORE:
                if score is None:
                    continue
                m = score
            elif metric is _Metric.RATE:
                if rate is None:
                    continue
                m = abs(rate)
            elif forecast is None:
                continue
            elif metric is _Metric.FORECAST_MAX:
                m = float(forecast[slot.selection].max())
            else:
                m = float(forecast[slot.selection].min())
            if slot.alarm is None:
                if slot.sign * m >= slot.set_level:
                    since = slot.pending_since
                    if since is None:
                        slot.pending_since = since = ts
                    if ts - since >= slot.on_delay:
                        self._raise(slot, ts, m, "")
                elif slot.pending_since is not None:
                    slot.pending_since = None
            elif slot.sign * m < slot.clear_level:
                since = slot.clearing_since
                if since is None:
                    slot.clearing_since = since = ts
                if ts - since >= slot.off_delay:
                    self._clear(slot, ts)
            elif slot.clearing_since is not None:
                slot.clearing_since = None

    def on_health(self, channel: str, ts: float, conditions: frozenset[HealthCondition]) -> None:
        """Evaluate the channel's health rules: ``conditions`` is everything that holds
        now (empty when healthy). Call it whenever health may have changed, and
        periodically (about once a second): "stale" arises with no sample at all.

        ts: UNIX seconds.
        """
        slots = self._health_slots.get(channel)
        if slots is None:
            self._add_channel(channel, ts)
            slots = self._health_slots[channel]
        for slot in slots:
            hit = not slot.conditions.isdisjoint(conditions)
            if slot.alarm is None:
                if hit:
                    since = slot.pending_since
                    if since is None:
                        slot.pending_since = since = ts
                    if ts - since >= slot.on_delay:
                        which = ", ".join(sorted(slot.conditions & conditions))
                        self._raise(slot, ts, None, which)
                elif slot.pending_since is not None:
                    slot.pending_since = None
            elif not hit:
                since = slot.clearing_since
                if since is None:
                    slot.clearing_since = since = ts
                if ts - since >= slot.off_delay:
                    self._clear(slot, ts)
            elif slot.clearing_since is not None:
                slot.clearing_since = None

    # -- remote changes ------------------------------------------------------------------

    def override_rules(self, overrides: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
        """Replace levels, delays and severity of configured rules, by rule name.

        overrides: rule name → the fields to change (``OVERRIDABLE_FIELDS``: set, clear,
            on_delay_s, off_delay_s, severity; None values are ignored). The whole set:
            a configured rule not named here goes back to its configured values, so
            applying the same mapping twice changes nothing.

        Each overridden rule is validated exactly like the config validates it (the
        hysteresis direction, non-negative delays, a known severity; a health rule has
        no levels). Returns the refused ones: rule name → reason; a refused rule keeps
        its configured values. Active alarms stay active; their clear level and
        off-delay are the new ones from now on. Call from the pipeline's event loop.
        """
        refused: dict[str, str] = {}
        for name in overrides:
            if name not in self._configured:
                known = ", ".join(sorted(self._configured)) or "none"
                refused[name] = f"no alarm rule named {name!r} (configured: {known})"
        for name, configured in self._configured.items():
            rule = configured
            changes = {k: v for k, v in overrides.get(name, {}).items() if v is not None}
            if changes:
                unknown = sorted(set(changes) - OVERRIDABLE_FIELDS)
                if unknown:
                    refused[name] = f"cannot override {', '.join(unknown)}"
                else:
                    try:
                        rule = type(configured).model_validate(
                            {**configured.model_dump(), **changes}
                        )
                    except ValidationError as exc:
                        refused[name] = _validation_reason(exc)
            if rule != self._rules[name]:
                self._replace_rule(rule)
        return refused

    def rule(self, name: str) -> ThresholdRule | ForecastRule | HealthRule:
        """The rule in effect under ``name`` (configured, or as overridden). Raises KeyError."""
        return self._rules[name]

    def _replace_rule(self, rule: ThresholdRule | ForecastRule | HealthRule) -> None:
        self._rules[rule.name] = rule
        for rules in (*self._exact.values(), self._star):
            for i, old in enumerate(rules):
                if old.name == rule.name:
                    rules[i] = rule
        for slots in (*self._sample_slots.values(), *self._health_slots.values()):
            for slot in slots:
                if slot.rule.name == rule.name:
                    slot.use(rule)

    # -- operator side -------------------------------------------------------------------

    def raise_internal(
        self, name: str, channel: str, ts: float, message: str, severity: Severity
    ) -> Alarm:
        """Raise an alarm about the agent itself (e.g. "model-rollback"), not tied to a
        configured rule: kind "internal", no actions besides the store and the twin. An
        active one with the same (name, channel) is kept (returned), not raised twice."""
        for entry in self._open.values():
            a = entry.alarm
            if a.rule == name and a.channel == channel and a.state.is_active:
                return replace(a)
        alarm = Alarm(
            id=self._next_id,
            rule=name,
            channel=channel,
            kind=INTERNAL_KIND,
            severity=severity,
            state=AlarmState.ACTIVE_UNACKNOWLEDGED,
            raised_at=ts,
            value=None,
            message=message,
        )
        self._next_id += 1
        self._open[alarm.id] = _Open(alarm, ())
        self.counters["raised"] += 1
        self._emit(AlarmEventKind.RAISED, ts, alarm, ())
        return replace(alarm)

    def clear_internal(self, name: str, channel: str, ts: float) -> None:
        """Clear the active internal alarm (name, channel), if any."""
        for entry in list(self._open.values()):
            a = entry.alarm
            is_it = a.kind == INTERNAL_KIND and a.rule == name and a.channel == channel
            if is_it and a.state.is_active:
                self._close(a, ts, ())

    def acknowledge(self, alarm_id: int, ts: float, by: str = "") -> Alarm:
        """Acknowledge an alarm at ``ts`` (UNIX seconds) by ``by`` (an operator name).

        Active-unacknowledged → active-acknowledged; cleared-unacknowledged → done (no
        longer tracked here). Acknowledging an already acknowledged active alarm changes
        nothing and emits nothing. Returns a snapshot of the alarm.
        Raises AlarmNotFound when no open alarm has that id.
        """
        entry = self._open.get(alarm_id)
        if entry is None:
            raise AlarmNotFound(alarm_id)
        alarm = entry.alarm
        if alarm.acked_at is not None:
            return replace(alarm)
        alarm.acked_at = ts
        alarm.acked_by = by or None
        if alarm.state is AlarmState.CLEARED:
            del self._open[alarm_id]
        else:
            alarm.state = AlarmState.ACTIVE_ACKNOWLEDGED
        self.counters["acknowledged"] += 1
        return self._emit(AlarmEventKind.ACKNOWLEDGED, ts, alarm, entry.actions).alarm

    def get(self, alarm_id: int) -> Alarm:
        """A snapshot of an open alarm. Raises AlarmNotFound (closed ones are in the store)."""
        entry = self._open.get(alarm_id)
        if entry is None:
            raise AlarmNotFound(alarm_id)
        return replace(entry.alarm)

    def active(self) -> list[Alarm]:
        """Snapshots of the active alarms (acknowledged or not), oldest first."""
        return [replace(e.alarm) for e in self._open.values() if e.alarm.state.is_active]

    def open_alarms(self) -> list[Alarm]:
        """Snapshots of every alarm still needing attention: the active ones and the cleared
        ones not yet acknowledged, oldest first (what ``restored`` expects after a restart)."""
        return [replace(e.alarm) for e in self._open.values()]

    def recent(self, limit: int = 50) -> list[AlarmEvent]:
        """The last ``limit`` events (at most ``recent_max``), newest first."""
        out: list[AlarmEvent] = []
        for event in reversed(self._recent):
            if len(out) >= limit:
                break
            out.append(event)
        return out

    def channel_state(self, channel: str) -> str:
        """The channel's active alarms as compact text for CSV output: "" when none, else
        "severity:rule" items, most severe first, joined by "|" (e.g.
        "critical:bearing-hot|warning:bearing-trend")."""
        return self._channel_state.get(channel, "")

    @property
    def next_id(self) -> int:
        """The id the next alarm will get."""
        return self._next_id

    # -- internals -----------------------------------------------------------------------

    def _select(
        self, rule: ForecastRule, index: int, problems: list[ConfigProblem]
    ) -> slice | npt.NDArray[np.intp] | None:
        picked = [
            i
            for i, h in enumerate(self._horizons)
            if rule.within_samples is None or h <= rule.within_samples
        ]
        if not picked:
            shown = ", ".join(map(str, self._horizons)) or "none"
            problems.append(
                ConfigProblem(
                    f"alarms.{index}.within_samples",
                    rule.within_samples,
                    f"selects none of the model's horizons ({shown})",
                )
            )
            return None
        if picked == list(range(picked[0], picked[-1] + 1)):
            return slice(picked[0], picked[-1] + 1)  # a view: no copy per sample
        return np.array(picked, dtype=np.intp)

    def _restore(self, alarm: Alarm) -> None:
        actions = self._rule_actions.get(alarm.rule, ())
        if alarm.kind == INTERNAL_KIND:  # raised by the agent itself: stays until cleared
            self._open[alarm.id] = _Open(replace(alarm), ())
            return
        if alarm.state is AlarmState.CLEARED:
            if alarm.acked_at is None:
                self._open[alarm.id] = _Open(replace(alarm), actions)
            return
        alarm = replace(alarm)
        self._open[alarm.id] = _Open(alarm, actions)
        rule = self._rules.get(alarm.rule)
        key = (alarm.rule, alarm.channel)
        covers = rule is not None and rule.channel in (alarm.channel, ALL_CHANNELS)
        if covers and key not in self._restored_active:
            self._restored_active[key] = alarm
        else:  # rule gone, moved to another channel, or a duplicate: clear it on first sight
            self._orphans.setdefault(alarm.channel, []).append(alarm)

    def _add_channel(self, channel: str, ts: float) -> list[_Slot]:
        rules = self._exact.get(channel, []) + self._star
        sample_slots: list[_Slot] = []
        health_slots: list[_Slot] = []
        for rule in rules:
            slot = _Slot(
                rule, channel, self._rule_actions[rule.name], self._selections.get(rule.name)
            )
            slot.alarm = self._restored_active.pop((rule.name, channel), None)
            (health_slots if isinstance(rule, HealthRule) else sample_slots).append(slot)
        self._sample_slots[channel] = sample_slots
        self._health_slots[channel] = health_slots
        self._update_channel_state(channel)
        for alarm in self._orphans.pop(channel, []):
            self._close(alarm, ts, self._open[alarm.id].actions)
        return sample_slots

    def _raise(self, slot: _Slot, ts: float, value: float | None, detail: str) -> None:
        rule = slot.rule
        alarm = Alarm(
            id=self._next_id,
            rule=rule.name,
            channel=slot.channel,
            kind=rule.kind,
            severity=rule.severity,
            state=AlarmState.ACTIVE_UNACKNOWLEDGED,
            raised_at=ts,
            value=value,
            message=rule.message or _describe(rule, slot.channel, value, detail),
        )
        self._next_id += 1
        slot.alarm = alarm
        slot.pending_since = None
        slot.clearing_since = None
        self._open[alarm.id] = _Open(alarm, slot.actions)
        self._update_channel_state(slot.channel)
        self.counters["raised"] += 1
        self._emit(AlarmEventKind.RAISED, ts, alarm, slot.actions)

    def _clear(self, slot: _Slot, ts: float) -> None:
        alarm = slot.alarm
        assert alarm is not None
        slot.alarm = None
        slot.clearing_since = None
        self._update_channel_state(slot.channel)
        self._close(alarm, ts, slot.actions)

    def _close(self, alarm: Alarm, ts: float, actions: tuple[Notifiable, ...]) -> None:
        alarm.state = AlarmState.CLEARED
        alarm.cleared_at = ts
        if alarm.acked_at is not None:
            del self._open[alarm.id]
        else:
            self._forget_beyond_cap()
        self.counters["cleared"] += 1
        self._emit(AlarmEventKind.CLEARED, ts, alarm, actions)

    def _forget_beyond_cap(self) -> None:
        cleared = [i for i, e in self._open.items() if e.alarm.state is AlarmState.CLEARED]
        for alarm_id in cleared[: max(0, len(cleared) - self._max_cleared_unacked)]:
            del self._open[alarm_id]
            self.counters["forgotten"] += 1

    def _emit(
        self, kind: AlarmEventKind, ts: float, alarm: Alarm, actions: tuple[Notifiable, ...]
    ) -> AlarmEvent:
        event = AlarmEvent(kind, ts, replace(alarm))  # a snapshot: later changes don't leak
        self._recent.append(event)
        self._sink(event)
        for action in actions:
            action.notify(event)
        return event

    def _update_channel_state(self, channel: str) -> None:
        active = [
            s.alarm
            for s in self._sample_slots.get(channel, []) + self._health_slots.get(channel, [])
            if s.alarm is not None
        ]
        active.sort(key=lambda a: (-_SEVERITY_RANK[a.severity], a.rule))
        self._channel_state[channel] = "|".join(f"{a.severity.value}:{a.rule}" for a in active)


def _validation_reason(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"])
        message = str(err["msg"]).removeprefix("Value error, ")
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts)


def _describe(
    rule: ThresholdRule | ForecastRule | HealthRule, channel: str, value: float | None, detail: str
) -> str:
    """The default message of an alarm, e.g. "bearing 87.2 >= 85"."""
    if isinstance(rule, HealthRule) or value is None:
        return f"{channel} health: {detail}"
    op = "<=" if rule.kind.endswith("_below") else ">="
    if isinstance(rule, ForecastRule):
        within = "" if rule.within_samples is None else f" within {rule.within_samples} samples"
        return f"{channel} forecast {value:.6g} {op} {rule.set:g}{within}"
    what = {"rate_above": " |rate|", "score_above": " score"}.get(rule.kind, "")
    return f"{channel}{what} {value:.6g} {op} {rule.set:g}"
