"""The alarm engine: evaluates the configured rules on every processed sample and every
health report.

One engine for the whole agent. Per (rule, channel) it keeps one ``Slot``: the rule's
check (which turns an input into a condition: alarms/rules/), the active alarm (at most
one: deduplication) and the delays (alarms/slot.py, shared by every rule type). Times are
the inputs' own timestamps (UNIX seconds), so a replay behaves exactly like the live run.

Every raise, acknowledge and clear becomes an ``AlarmEvent``: handed to ``sink`` (the
store persists it) and to each of the rule's actions, in that order (alarms/ledger.py).
Neither may block or raise. See docs/alarms.md.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from edge_agent.alarms.ledger import INTERNAL_KIND, AlarmLedger
from edge_agent.alarms.model import (
    Alarm,
    AlarmEvent,
    AlarmEventKind,
    AlarmState,
    HealthCondition,
    Notifiable,
    Severity,
)
from edge_agent.alarms.reason import AlarmReason, ReasonSource, bounded_parts, finite_or_none
from edge_agent.alarms.rules.base import ALL_CHANNELS, Forecast, Input
from edge_agent.alarms.rules.cross import CrossReading
from edge_agent.alarms.rules.registry import AlarmRule, rule_list_problems
from edge_agent.alarms.slot import Change, Slot
from edge_agent.errors import OverrideRefused
from edgetwin_common.errors import ConfigInvalid, ConfigProblem

_SEVERITY_RANK = {Severity.INFO: 0, Severity.WARNING: 1, Severity.CRITICAL: 2}


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
    rule does not fit the model (a forecast rule selecting none of its horizons). Not
    thread-safe: call every method from the pipeline's event loop.
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
        problems = rule_list_problems(rules, actions.keys())
        for i, rule in enumerate(rules):
            for p in rule.problems(horizons):
                problems.append(ConfigProblem(f"alarms.{i}.{p.path}", p.value, p.message))
        if problems:
            raise ConfigInvalid("alarms", problems)
        self._horizons = tuple(horizons)
        self._configured: dict[str, AlarmRule] = {rule.name: rule for rule in rules}
        self._rules = dict(self._configured)
        self._rule_actions = {
            rule.name: tuple(actions[name] for name in rule.actions) for rule in rules
        }
        # Slots are built at a channel's first input, so "*" rules cover channels that
        # nobody listed; each input goes only to the slots whose check watches it.
        self._slots: dict[str, list[Slot]] = {}
        self._sample_slots: dict[str, list[Slot]] = {}
        self._health_slots: dict[str, list[Slot]] = {}
        self._cross_slots: dict[str, list[Slot]] = {}
        self._channel_state: dict[str, str] = {}
        self._step_periods: dict[str, float | None] = {}
        self._reason_sources: dict[str, ReasonSource] = {}
        self._restored_active: dict[tuple[str, str], Alarm] = {}
        self._orphans: dict[str, list[Alarm]] = {}
        self._ledger = AlarmLedger(
            sink,
            next_id,
            max_cleared_unacknowledged=max_cleared_unacknowledged,
            recent_max=recent_max,
        )
        self.counters = self._ledger.counters
        """Events emitted by kind, and cleared-unacknowledged alarms forgotten (memory cap)."""
        for alarm in sorted(restored, key=lambda a: a.id):
            self._restore(alarm)

    # -- the per-sample path -------------------------------------------------------------

    def on_sample(
        self,
        channel: str,
        ts: float,
        value: float,
        forecast: Forecast | None = None,
        score: float | None = None,
        rate: float | None = None,
    ) -> None:
        """Evaluate the channel's rules on one processed sample.

        ts: UNIX seconds (drives on/off delays and the rate rules' time span).
        value: the reading, channel units.
        forecast: one value per horizon (the engine's ``horizons``), channel units; None
            while the window is filling. score: the anomaly score, one per model step
            (None while the scorer is not warm, and between model steps).
        rate: Δvalue/Δt between the last two processed samples, units per second (None
            for the first sample). No built-in rule uses it any more: rate rules measure
            over their own ``span_s`` from ts and value, immune to read bursts. A rule
            whose input is None keeps its state.
        """
        slots = self._sample_slots.get(channel)
        if slots is None:
            self._add_channel(channel, ts)
            slots = self._sample_slots[channel]
        for slot in slots:
            condition = slot.on_sample(ts, value, forecast, score, rate)
            # The hot path: most samples neither meet the awaited condition nor stop a
            # running delay, and then the step would change nothing.
            if condition is slot.awaiting or slot.since is not None:
                change = slot.step(ts, condition)
                if change is not None:
                    self._settle(slot, ts, change)

    def on_cross(self, channel: str, ts: float, reading: CrossReading) -> None:
        """Evaluate the channel's cross rules on its cross-channel surprise at the end of
        a twin period (``ts``, UNIX s; edge_agent/twin/cross/)."""
        slots = self._cross_slots.get(channel)
        if slots is None:
            self._add_channel(channel, ts)
            slots = self._cross_slots[channel]
        for slot in slots:
            change = slot.step(ts, slot.check.on_cross(ts, reading))
            if change is not None:
                self._settle(slot, ts, change)

    def on_health(self, channel: str, ts: float, conditions: frozenset[HealthCondition]) -> None:
        """Evaluate the channel's rules on its health: ``conditions`` is everything that
        holds now (empty when healthy). Call it whenever health may have changed, and
        periodically (about once a second): "stale" arises with no sample at all.

        ts: UNIX seconds.
        """
        slots = self._health_slots.get(channel)
        if slots is None:
            self._add_channel(channel, ts)
            slots = self._health_slots[channel]
        for slot in slots:
            change = slot.step(ts, slot.check.on_health(conditions))
            if change is not None:
                self._settle(slot, ts, change)

    # -- remote changes ------------------------------------------------------------------

    def override_rules(self, overrides: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
        """Replace levels, delays and severity of configured rules, by rule name.

        overrides: rule name → the fields to change (``OVERRIDABLE_FIELDS`` of
            alarms/rules/base.py: set, clear, on_delay_s, off_delay_s, severity; None
            values are ignored). The whole set: a configured rule not named here goes
            back to its configured values, so applying the same mapping twice changes
            nothing.

        Each overridden rule is validated exactly like the config validates it
        (``RuleConfig.overridden``). Returns the refused ones: rule name → reason; a
        refused rule keeps its configured values. Active alarms stay active; their clear
        level and off-delay are the new ones from now on. Call from the event loop.
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
                try:
                    rule = configured.overridden(changes)
                except OverrideRefused as exc:
                    refused[name] = str(exc)
            if rule != self._rules[name]:
                self._replace_rule(rule)
        return refused

    def rule(self, name: str) -> AlarmRule:
        """The rule in effect under ``name`` (configured, or as overridden). Raises KeyError."""
        return self._rules[name]

    def _replace_rule(self, rule: AlarmRule) -> None:
        self._rules[rule.name] = rule
        for slots in self._slots.values():
            for slot in slots:
                if slot.rule.name == rule.name:
                    check = rule.check(self._horizons)
                    check.use_step_period(self._step_periods.get(slot.channel))
                    check.carry_from(slot.check)
                    slot.use(rule, check)

    # -- operator side -------------------------------------------------------------------

    def set_step_period(self, channel: str, step_s: float | None) -> None:
        """Seconds between two model steps on ``channel`` (None: unknown): forecast
        rules state their horizons in time with it."""
        self._step_periods[channel] = step_s
        for slot in self._slots.get(channel, ()):
            slot.check.use_step_period(step_s)

    def set_reason_source(self, channel: str, source: ReasonSource) -> None:
        """Where the reason of an alarm raised on ``channel`` gets the score's parts and
        the recent window (the channel pipeline); asked once per raise."""
        self._reason_sources[channel] = source

    def raise_internal(
        self, name: str, channel: str, ts: float, message: str, severity: Severity
    ) -> Alarm:
        """Raise an alarm about the agent itself (e.g. "model-rollback"), not tied to a
        configured rule: kind "internal", no actions besides the store and the twin. An
        active one with the same (name, channel) is kept (returned), not raised twice."""
        return self._ledger.raise_internal(name, channel, ts, message, severity)

    def clear_internal(self, name: str, channel: str, ts: float) -> None:
        """Clear the active internal alarm (name, channel), if any."""
        self._ledger.clear_internal(name, channel, ts)

    def acknowledge(self, alarm_id: int, ts: float, by: str = "") -> Alarm:
        """Acknowledge an alarm at ``ts`` (UNIX seconds) by ``by`` (an operator name).

        Active-unacknowledged → active-acknowledged; cleared-unacknowledged → done (no
        longer tracked here). Acknowledging an already acknowledged active alarm changes
        nothing and emits nothing. Returns a snapshot of the alarm.
        Raises AlarmNotFound when no open alarm has that id.
        """
        return self._ledger.acknowledge(alarm_id, ts, by)

    def get(self, alarm_id: int) -> Alarm:
        """A snapshot of an open alarm. Raises AlarmNotFound (closed ones are in the store)."""
        return self._ledger.get(alarm_id)

    def active(self) -> list[Alarm]:
        """Snapshots of the active alarms (acknowledged or not), oldest first."""
        return self._ledger.active()

    def open_alarms(self) -> list[Alarm]:
        """Snapshots of every alarm still needing attention: the active ones and the cleared
        ones not yet acknowledged, oldest first (what ``restored`` expects after a restart)."""
        return self._ledger.open_alarms()

    def recent(self, limit: int = 50) -> list[AlarmEvent]:
        """The last ``limit`` events (at most ``recent_max``), newest first."""
        return self._ledger.recent(limit)

    def channel_state(self, channel: str) -> str:
        """The channel's active alarms as compact text for CSV output: "" when none, else
        "severity:rule" items, most severe first, joined by "|" (e.g.
        "critical:bearing-hot|warning:bearing-trend")."""
        return self._channel_state.get(channel, "")

    @property
    def next_id(self) -> int:
        """The id the next alarm will get."""
        return self._ledger.next_id

    # -- internals -----------------------------------------------------------------------

    def _restore(self, alarm: Alarm) -> None:
        self._ledger.skip_id(alarm.id)
        if alarm.kind == INTERNAL_KIND:  # raised by the agent itself: stays until cleared
            self._ledger.keep(alarm, ())
            return
        actions = self._rule_actions.get(alarm.rule, ())
        if alarm.state is AlarmState.CLEARED:
            if alarm.acked_at is None:
                self._ledger.keep(alarm, actions)
            return
        alarm = self._ledger.keep(alarm, actions)
        rule = self._rules.get(alarm.rule)
        key = (alarm.rule, alarm.channel)
        covers = rule is not None and rule.channel in (alarm.channel, ALL_CHANNELS)
        if covers and key not in self._restored_active:
            self._restored_active[key] = alarm
        else:  # rule gone, moved to another channel, or a duplicate: clear it on first sight
            self._orphans.setdefault(alarm.channel, []).append(alarm)

    def _add_channel(self, channel: str, ts: float) -> None:
        slots: list[Slot] = []
        listed = [rule for rule in self._rules.values() if rule.channel == channel]
        for rule in listed + [r for r in self._rules.values() if r.channel == ALL_CHANNELS]:
            slot = Slot(rule, rule.check(self._horizons), channel, self._rule_actions[rule.name])
            slot.check.use_step_period(self._step_periods.get(channel))
            restored = self._restored_active.pop((rule.name, channel), None)
            if restored is not None:
                slot.hold(restored)
            slots.append(slot)
        self._slots[channel] = slots
        self._sample_slots[channel] = [s for s in slots if Input.SAMPLES in s.check.watches]
        self._health_slots[channel] = [s for s in slots if Input.HEALTH in s.check.watches]
        self._cross_slots[channel] = [s for s in slots if Input.CROSS in s.check.watches]
        self._update_channel_state(channel)
        for alarm in self._orphans.pop(channel, []):
            self._ledger.close(alarm, ts, self._ledger.actions_of(alarm))

    def _settle(self, slot: Slot, ts: float, change: Change) -> None:
        if change is Change.RAISE:
            rule, check = slot.rule, slot.check
            message = rule.message or check.describe(slot.channel)
            alarm = self._ledger.open(
                rule.name,
                slot.channel,
                rule.type,
                rule.severity,
                ts,
                check.value,
                message,
                slot.actions,
                self._reason(slot),
            )
            slot.hold(alarm)
            self._update_channel_state(slot.channel)
            self._ledger.emit(AlarmEventKind.RAISED, ts, alarm, slot.actions)
        else:
            alarm = slot.release()
            self._update_channel_state(slot.channel)
            self._ledger.close(alarm, ts, slot.actions)

    def _reason(self, slot: Slot) -> AlarmReason:
        """Why ``slot``'s rule is raising now: built once per raise, never per sample."""
        check, rule = slot.check, slot.rule
        limit, value = finite_or_none(check.limit()), finite_or_none(check.value)
        direction = None
        if limit is not None:
            direction = "below" if rule.type.endswith("_below") else "above"
        source = self._reason_sources.get(slot.channel)
        parts = check.reason_parts()
        if parts is None:
            parts = {} if source is None else source.score_parts()
        return AlarmReason(
            rule=rule.name,
            trigger=check.trigger or rule.type.split("_", 1)[0],
            top_channel=slot.channel,
            value=value,
            limit=limit,
            direction=direction,
            parts=bounded_parts(parts),
            conditions=check.holding(),
            window=None if source is None else source.window_snapshot(),
        )

    def _update_channel_state(self, channel: str) -> None:
        active = [s.alarm for s in self._slots.get(channel, []) if s.alarm is not None]
        active.sort(key=lambda a: (-_SEVERITY_RANK[a.severity], a.rule))
        self._channel_state[channel] = "|".join(f"{a.severity.value}:{a.rule}" for a in active)
