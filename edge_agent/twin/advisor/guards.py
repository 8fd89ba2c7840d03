"""The guards between what the advisor wants and what it writes.

One decision per advisor step, in this order (docs/advisor.md):

1. disabled (the default): nothing is ever written;
2. an operator override: its value, at once;
3. a failure (model, sensor, source): the safe value, at once (once the advisor has
   written anything: before, it has not taken control and leaves the device alone);
4. bounds: the wanted value is clipped to [minimum, maximum];
5. changes smaller than ``min_change`` are not written;
6. hold-off: no change within ``hold_off_s`` of the last one;
7. rate: a change moves at most ``max_rate_per_min`` x one hold-off (or step) period.

``decide`` says what to write (or why nothing); ``commit`` records a write that went
through (only a successful write starts a hold-off).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from enum import StrEnum

from edge_agent.twin.advisor.config import AdvisorConfig
from edge_agent.twin.advisor.errors import OverrideInvalid

__all__ = ["Change", "Decision", "Guards", "Verdict"]


class Verdict(StrEnum):
    """What the guards did with a step's wish."""

    DISABLED = "disabled"
    OVERRIDE = "override"
    SAFE = "safe"
    APPLIED = "applied"
    RATE_LIMITED = "rate_limited"
    HELD_OFF = "held_off"
    UNCHANGED = "unchanged"

    @property
    def writes(self) -> bool:
        return self in (Verdict.OVERRIDE, Verdict.SAFE, Verdict.APPLIED, Verdict.RATE_LIMITED)


@dataclass(frozen=True, slots=True)
class Decision:
    """value: what to write (None: nothing); verdict: why; wanted: the value asked for
    after bounds (None when the step failed)."""

    value: float | None
    verdict: Verdict
    wanted: float | None
    note: str = ""


@dataclass(frozen=True, slots=True)
class Change:
    """One value written: when (UNIX s, the data's clock), from what, to what, and why."""

    ts: float
    previous: float | None
    value: float
    verdict: Verdict
    note: str


class Guards:
    """The guard state: the last value written, when, and the operator's override."""

    def __init__(self, config: AdvisorConfig, history: int = 50) -> None:
        self.config = config
        self.applied: float | None = None
        self.last_change_ts: float | None = None
        self.override: float | None = None
        self.override_by: str | None = None
        self.changes: deque[Change] = deque(maxlen=history)

    def set_override(self, value: float | None, by: str = "") -> None:
        """Hold the output at ``value`` (None: release, the advisor resumes from there
        under rate and hold-off). Raises OverrideInvalid outside the bounds."""
        if value is not None:
            low, high = self.config.minimum, self.config.maximum
            if not math.isfinite(value) or not low <= value <= high:
                raise OverrideInvalid(f"override {value} is outside the bounds [{low}, {high}]")
        self.override = value
        self.override_by = (by or None) if value is not None else None

    def decide(self, now: float, wanted: float | None, failure: str | None) -> Decision:
        """What to write at ``now`` given the advisor's ``wanted`` value, or the
        ``failure`` that kept it from having one."""
        config = self.config
        if not config.enabled:
            return Decision(None, Verdict.DISABLED, wanted, "the advisor is disabled")
        if self.override is not None:
            return self._at_once(self.override, Verdict.OVERRIDE, wanted, "operator override")
        if failure is not None or wanted is None:
            why = failure or "no recommendation"
            if self.applied is None:
                # Never in control (warming up, say): the device runs as it did; the
                # advisor takes no responsibility it has not taken yet.
                return Decision(None, Verdict.UNCHANGED, None, f"not in control yet: {why}")
            return self._at_once(config.safe, Verdict.SAFE, None, why)
        wanted = min(config.maximum, max(config.minimum, wanted))
        reference = config.safe if self.applied is None else self.applied
        if self.applied is not None and abs(wanted - reference) < config.min_change:
            return Decision(None, Verdict.UNCHANGED, wanted)
        if self.last_change_ts is not None:
            since = now - self.last_change_ts
            if since < config.hold_off_s:
                note = f"{config.hold_off_s - since:.0f} s of hold-off left"
                return Decision(None, Verdict.HELD_OFF, wanted, note)
            span = min(since, max(config.hold_off_s, config.step_s))
        else:
            span = max(config.hold_off_s, config.step_s)
        if self.applied is None:
            # The first write: nothing to ramp from (the device's own value is unknown to
            # the output), so it goes straight to the bounded value.
            return Decision(wanted, Verdict.APPLIED, wanted)
        allowed = config.max_rate_per_min * span / 60.0
        if abs(wanted - reference) > allowed:
            value = reference + math.copysign(allowed, wanted - reference)
            return Decision(
                value, Verdict.RATE_LIMITED, wanted, f"at most {allowed:.3g} per change"
            )
        return Decision(wanted, Verdict.APPLIED, wanted)

    def _at_once(self, value: float, verdict: Verdict, wanted: float | None, note: str) -> Decision:
        if self.applied is not None and abs(value - self.applied) < 1e-12:
            return Decision(None, Verdict.UNCHANGED, wanted, note)
        return Decision(value, verdict, wanted, note)

    def commit(self, now: float, decision: Decision) -> Change:
        """Record that ``decision.value`` was written at ``now`` (starts a hold-off)."""
        assert decision.value is not None
        change = Change(now, self.applied, decision.value, decision.verdict, decision.note)
        self.applied = decision.value
        self.last_change_ts = now
        self.changes.append(change)
        return change
