"""One rule on one channel: the on- and off-delays and the hysteresis, the state machine
every rule type shares.

    no alarm:  SET held for on_delay_s (from the first SET, on the inputs' own
               timestamps) → raise; CLEAR or BETWEEN stops the delay
    active:    CLEAR held for off_delay_s → clear; SET or BETWEEN stops the delay

An input that says nothing to the rule (None) changes nothing.
"""

from __future__ import annotations

from enum import Enum

from edge_agent.alarms.model import Alarm, Notifiable
from edge_agent.alarms.rules.base import Check, Condition, RuleConfig


class Change(Enum):
    """What the engine must do after a slot's step (None: nothing)."""

    RAISE = "raise"
    CLEAR = "clear"


class Slot:
    """The state of one rule on one channel: its check, its active alarm (at most one:
    deduplication), the condition it waits for (SET without an alarm, CLEAR with one) and
    since when (UNIX seconds) that condition has held."""

    __slots__ = ("actions", "alarm", "awaiting", "channel", "check", "on_sample", "rule", "since")

    def __init__(
        self, rule: RuleConfig, check: Check, channel: str, actions: tuple[Notifiable, ...]
    ) -> None:
        self.rule = rule
        self.check = check
        self.on_sample = check.on_sample
        """The check's ``on_sample``, bound once: the per-sample path calls it directly."""
        self.channel = channel
        self.actions = actions
        self.alarm: Alarm | None = None
        self.awaiting = Condition.SET
        self.since: float | None = None

    def use(self, rule: RuleConfig, check: Check) -> None:
        """Take levels, delays and severity from ``rule`` (same name and type); the state
        (active alarm, the delay running) is kept."""
        self.rule = rule
        self.check = check
        self.on_sample = check.on_sample

    def step(self, ts: float, condition: Condition | None) -> Change | None:
        """Advance the delay by one input at ``ts`` (UNIX seconds); the caller raises or
        clears when told to, then calls ``hold`` or ``release``."""
        if condition is not self.awaiting:
            if condition is not None:
                self.since = None
            return None
        since = self.since
        if since is None:
            self.since = since = ts
        if self.alarm is None:
            return Change.RAISE if ts - since >= self.rule.on_delay_s else None
        return Change.CLEAR if ts - since >= self.rule.off_delay_s else None

    def hold(self, alarm: Alarm) -> None:
        """The alarm just raised (or restored) for this slot: now wait for CLEAR."""
        self.alarm = alarm
        self.awaiting = Condition.CLEAR
        self.since = None

    def release(self) -> Alarm:
        """Forget the active alarm (it clears) and return it: now wait for SET again."""
        alarm = self.alarm
        assert alarm is not None, "release() without an active alarm"
        self.alarm = None
        self.awaiting = Condition.SET
        self.since = None
        return alarm
