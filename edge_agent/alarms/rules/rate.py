"""Rules on the rate of change: "rate_above".

The rate is measured over a span of time, not between two neighbouring samples: a
serial source stamps lines on receipt, so lines that arrive in one read burst are
microseconds apart and their difference divided by that gap is thousands of units per
second. And even with perfect timestamps, the difference of two samples a tenth of a
second apart is mostly sensor noise. Over ``span_s`` both effects shrink to nothing
while a real fast rise stays what it is.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Literal

from pydantic import Field

from edge_agent.alarms.rules.base import (
    _BETWEEN,
    _CLEAR,
    _SET,
    Check,
    Condition,
    Forecast,
    LevelCheck,
    LevelRule,
)

_ANCHORS = 16
"""Reference samples kept per channel: one per span/8, so they cover two spans."""
_ANCHORS_PER_SPAN = 8


class RateRule(LevelRule):
    """m is |Δvalue/Δt| between the current sample and the newest earlier one at least
    ``span_s`` older (on the samples' own timestamps), channel units per second. The
    rule keeps its state until the channel has ``span_s`` of history, and again after
    the timestamps go back or a gap longer than ``max_gap_s`` (the rate across it would
    be stale)."""

    type: Literal["rate_above"]
    """The rule type (formerly `kind`)."""
    span_s: Annotated[float, Field(gt=0, le=86400)] = 1.0
    """The shortest time base of the rate, seconds (> 0): immune to read bursts and to
    sample-to-sample noise shorter than it."""
    max_gap_s: Annotated[float | None, Field(gt=0)] = None
    """A gap between two samples longer than this restarts the rate's history; default
    10 × span_s."""

    def check(self, horizons: Sequence[int]) -> RateCheck:
        return RateCheck(self)


class RateCheck(LevelCheck):
    """Keeps up to ``_ANCHORS`` reference samples, taken at least span/8 apart, in two
    preallocated rings; the reference for the current sample is the newest anchor at
    least ``span_s`` older, found by a pointer that only moves forward (amortized O(1),
    nothing allocated per sample beyond a float)."""

    __slots__ = ("_count", "_head", "_max_gap", "_ref", "_spacing", "_span", "_ts", "_values")
    label = " |rate|"

    def __init__(self, rule: RateRule) -> None:
        super().__init__(rule)
        self._span = rule.span_s
        self._spacing = rule.span_s / _ANCHORS_PER_SPAN
        self._max_gap = rule.max_gap_s if rule.max_gap_s is not None else 10.0 * rule.span_s
        self._ts = [0.0] * _ANCHORS
        self._values = [0.0] * _ANCHORS
        self._head = 0
        """Index of the newest anchor."""
        self._count = 0
        """Anchors kept (0 to _ANCHORS)."""
        self._ref = 0
        """Index of the oldest anchor still a candidate reference."""

    def carry_from(self, previous: Check) -> None:
        # Same span: the anchors stay valid, so the rate goes on without a gap.
        if isinstance(previous, RateCheck) and previous._span == self._span:
            self._ts[:] = previous._ts
            self._values[:] = previous._values
            self._head, self._count, self._ref = previous._head, previous._count, previous._ref

    def measure(
        self, value: float, forecast: Forecast | None, score: float | None, rate: float | None
    ) -> float | None:
        return None if rate is None else abs(rate)

    def on_sample(
        self,
        ts: float,
        value: float,
        forecast: Forecast | None,
        score: float | None,
        rate: float | None,
    ) -> Condition | None:
        anchors_ts = self._ts
        head = self._head
        if self._count == 0 or ts < anchors_ts[head] or ts - anchors_ts[head] > self._max_gap:
            self._restart(ts, value)
            return None
        if ts - anchors_ts[head] >= self._spacing:
            self._push(ts, value)
        # Move the reference to the newest anchor that is still at least a span old.
        span = self._span
        ref = self._ref
        head = self._head
        while ref != head:
            nxt = ref + 1 if ref + 1 < _ANCHORS else 0
            if ts - anchors_ts[nxt] < span:
                break
            ref = nxt
        self._ref = ref
        elapsed = ts - anchors_ts[ref]
        if elapsed < span:
            return None
        m = abs((value - self._values[ref]) / elapsed)
        self.value = m
        signed = self._sign * m
        if signed >= self._set:
            return _SET
        if signed < self._clear:
            return _CLEAR
        return _BETWEEN

    def _restart(self, ts: float, value: float) -> None:
        self._head = self._ref = 0
        self._count = 1
        self._ts[0] = ts
        self._values[0] = value

    def _push(self, ts: float, value: float) -> None:
        head = self._head + 1 if self._head + 1 < _ANCHORS else 0
        if self._count == _ANCHORS:
            if head == self._ref:  # the oldest anchor is overwritten: the next one is
                self._ref = head + 1 if head + 1 < _ANCHORS else 0
        else:
            self._count += 1
        self._ts[head] = ts
        self._values[head] = value
        self._head = head
