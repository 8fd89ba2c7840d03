"""Rules on the cross-channel surprise (docs/anomaly-score.md, "Cross-channel surprise"):
"cross_above".

Once per completed twin period the twin predicts each output channel's period mean from
the actual window before it, the actual controls and the other channels
(edge_agent/twin/cross/); what the twin did not explain is scored on the likelihood
scale (-log10 of a probability) as the per-channel detector's residual is. The rule
raises on that surprise, on the side it is asked to watch ("a bearing hot for its
load": ``side = "high"``) and, when ``min_unexplained`` is set, only once the channel
has moved that far (channel units) more than the twin explains over the last
``explain_periods`` periods. Each ``CrossReading`` is one step, like a score: the clear
condition counts periods (``clear_steps``), as the score rule does.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import Field

from edge_agent.alarms.rules.base import (
    _BETWEEN,
    _CLEAR,
    _SET,
    Check,
    Condition,
    Input,
    LevelRule,
)
from edgetwin_common.durations import duration_text


@dataclass(frozen=True, slots=True)
class CrossReading:
    """One channel's cross-channel surprise at the end of one twin period.

    surprise: -log10 of a probability (3 = a 1-in-1,000 surprise), after habituation;
    actual, predicted: the period's mean and the twin's prediction of it, channel units;
    unexplained: the sum of (actual - predicted) over the last ``periods`` periods,
    channel units (what the channel did beyond what the others explain);
    period_s: the twin's period, s; explained_by: the channels the twin read besides
    this one, and the channel's unit (the reason's words).
    """

    surprise: float
    actual: float
    predicted: float
    unexplained: float
    periods: int
    period_s: float
    explained_by: tuple[str, ...] = ()
    unit: str = ""

    @property
    def residual(self) -> float:
        """actual - predicted, channel units (> 0: the channel reads higher than the
        others explain)."""
        return self.actual - self.predicted


class Side(StrEnum):
    """Which misses a cross rule watches."""

    HIGH = "high"
    """The channel reads higher than the others explain (a bearing hot for its load)."""
    LOW = "low"
    """It reads lower (a current too low for its flow: a dry-running pump)."""
    BOTH = "both"


class CrossRule(LevelRule):
    """m is the channel's cross-channel surprise, once per twin period (needs [twin]; no
    surprise, no change). Set: a surprise >= set whose recent misses are on ``side`` and
    at least ``min_unexplained`` in size. Clear: the last ``clear_steps`` periods hold
    no surprise >= set and at most ``clear_share`` of them >= clear."""

    type: Literal["cross_above"]
    """The rule type."""
    side: Side = Side.HIGH
    """"high": the channel reads higher than the twin predicts from the others; "low":
    lower; "both"."""
    min_unexplained: Annotated[float, Field(ge=0)] = 0.0
    """Channel units the channel must have moved beyond the twin's prediction over the
    detector's explain_periods ([twin.cross]) before the rule sets (0: any size): the
    operator's floor, e.g. 2.0 for "2 °C hotter than its load explains"."""
    clear_steps: Annotated[int, Field(ge=1, le=100_000)] = 10
    """Periods the clear condition looks back over."""
    clear_share: Annotated[float, Field(ge=0, lt=1)] = 0.0
    """Share of those periods allowed at or above `clear`."""
    warmup_s: Annotated[float, Field(ge=0)] = 0.0
    """Seconds after the channel's first surprise during which the rule ignores it."""

    def check(self, horizons: Sequence[int]) -> CrossCheck:
        return CrossCheck(self)


class CrossCheck(Check):
    """The last ``clear_steps`` periods as kinds (_LOW/_HIGH/_SET), counted as they come."""

    __slots__ = (
        "_allowed",
        "_clear",
        "_highs",
        "_last",
        "_min",
        "_pos",
        "_ring",
        "_seen",
        "_set",
        "_sets",
        "_side",
        "_steps",
        "_warm_from",
        "_warmup_s",
    )
    watches = frozenset({Input.CROSS})
    trigger = "score"
    """The batch contract's trigger kinds: a cross alarm is a score alarm whose parts say
    "cross" (docs/alarms.md)."""

    def __init__(self, rule: CrossRule) -> None:
        super().__init__()
        self._set = rule.set
        self._clear = rule.set if rule.clear is None else rule.clear
        self._side = rule.side
        self._min = rule.min_unexplained
        self._steps = rule.clear_steps
        self._allowed = math.floor(rule.clear_share * rule.clear_steps + 1e-9)
        self._ring = bytearray(rule.clear_steps)
        self._pos = self._seen = self._highs = self._sets = 0
        self._warmup_s = rule.warmup_s
        self._warm_from: float | None = None
        self._last: CrossReading | None = None

    def carry_from(self, previous: Check) -> None:
        if isinstance(previous, CrossCheck) and previous._warm_from is not None:
            self._warm_from = previous._warm_from

    def _on_side(self, reading: CrossReading) -> bool:
        u = reading.unexplained
        if self._side is Side.HIGH:
            return u > 0.0 and u >= self._min
        if self._side is Side.LOW:
            return u < 0.0 and -u >= self._min
        return abs(u) >= self._min and u != 0.0

    def on_cross(self, ts: float, reading: CrossReading) -> Condition | None:
        warm_from = self._warm_from
        if warm_from is None:
            self._warm_from = warm_from = ts + self._warmup_s
        if ts < warm_from:
            return None
        self._last = reading
        surprise = reading.surprise
        self.value = surprise
        on_side = self._on_side(reading)
        if surprise >= self._set and on_side:
            kind = 2
        elif surprise >= self._clear and on_side:
            kind = 1
        else:
            kind = 0
        ring, pos = self._ring, self._pos
        old = ring[pos]
        self._sets -= old == 2
        self._highs -= old == 1
        ring[pos] = kind
        self._pos = pos + 1 if pos + 1 < self._steps else 0
        self._sets += kind == 2
        self._highs += kind == 1
        if self._seen < self._steps:
            self._seen += 1
        if kind == 2:
            return _SET
        if self._seen < self._steps:
            return _BETWEEN
        if self._sets == 0 and self._highs <= self._allowed:
            return _CLEAR
        return _BETWEEN

    def limit(self) -> float | None:
        return self._set

    def reason_parts(self) -> Mapping[str, float] | None:
        r = self._last
        if r is None:
            return None
        return {
            "cross": r.surprise,
            "actual": r.actual,
            "predicted": r.predicted,
            "residual": r.residual,
            "unexplained": r.unexplained,
            "periods": float(r.periods),
        }

    def describe(self, channel: str) -> str:
        r = self._last
        if r is None:  # raised only after a reading; kept total for the type
            return f"{channel} cross-channel surprise >= {self._set:g}"
        surprise = f" (cross-channel surprise {r.surprise:.3g} >= {self._set:g})"
        return cross_text(channel, r) + surprise


def cross_text(channel: str, r: CrossReading) -> str:
    """The operator's words: "bearing_temp 4.2 °C above what load, ambient, current and
    vibration predict over the last 10 min"."""
    u = r.unexplained
    side = "above" if u >= 0.0 else "below"
    others = list(r.explained_by)
    if len(others) > 1:
        names = ", ".join(others[:-1]) + " and " + others[-1]
    else:
        names = others[0] if others else "the other channels"
    amount = f"{abs(u):.2g}" if abs(u) < 1 else f"{abs(u):.1f}"
    unit_text = f" {r.unit}" if r.unit else ""
    span = duration_text(r.periods * r.period_s)
    return f"{channel} {amount}{unit_text} {side} what {names} predict over the last {span}"
