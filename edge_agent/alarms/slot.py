"""One rule on one channel: the on- and off-delays and the hysteresis, the state machine
every rule type shares.

    no alarm:  SET for on_delay_s (from the first SET, on the inputs' own timestamps)
               → raise; any other condition starts the delay again
    active:    CLEAR for off_delay_s → clear; any other condition starts it again

UNKNOWN (the input says nothing to the rule) changes nothing.
"""

from __future__ import annotations

from enum import Enum

from edge_agent.alarms.model import Alarm, Notifiable
from edge_agent.alarms.rules.base import Check, Condition, RuleConfig


class Change(Enum):
    """What the engine must do after a slot's step."""

    NONE = "none"
    RAISE = "raise"
    CLEAR = "clear"


class Slot:
    """The state of one rule on one channel: its check, its active alarm (at most one:
    deduplication), and since when (UNIX seconds) the set or the clear condition has held."""

    __slots__ = ("actions", "alarm", "channel", "check", "clearing_since", "pending_since", "rule")

    def __init__(
        self, rule: RuleConfig, check: Check, channel: str, actions: tuple[Notifiable, ...]
    ) -> None:
        self.rule = rule
        self.check = check
        self.channel = channel
        self.actions = actions
        self.alarm: Alarm | None = None
        self.pending_since: float | None = None
        self.clearing_since: float | None = None

    def use(self, rule: RuleConfig, check: Check) -> None:
        """Take levels, delays and severity from ``rule`` (same name and type); the state
        (active alarm, pending and clearing times) is kept."""
        self.rule = rule
        self.check = check

    def step(self, ts: float, condition: Condition) -> Change:
        """Advance the delays by one input at ``ts`` (UNIX seconds); the caller raises or
        clears when told to and then calls ``hold`` or ``release``."""
        if condition is Condition.UNKNOWN:
            return Change.NONE
        if self.alarm is None:
            if condition is not Condition.SET:
                self.pending_since = None
                return Change.NONE
            since = self.pending_since
            if since is None:
                self.pending_since = since = ts
            return Change.RAISE if ts - since >= self.rule.on_delay_s else Change.NONE
        if condition is not Condition.CLEAR:
            self.clearing_since = None
            return Change.NONE
        since = self.clearing_since
        if since is None:
            self.clearing_since = since = ts
        return Change.CLEAR if ts - since >= self.rule.off_delay_s else Change.NONE

    def hold(self, alarm: Alarm) -> None:
        """The alarm just raised (or restored) for this slot."""
        self.alarm = alarm
        self.pending_since = None
        self.clearing_since = None

    def release(self) -> Alarm:
        """Forget the active alarm (it clears) and return it."""
        alarm = self.alarm
        assert alarm is not None, "release() without an active alarm"
        self.alarm = None
        self.clearing_since = None
        return alarm
