"""Rules on the anomaly score (docs/anomaly-score.md): "score_above".

A score is noisy by nature: at a 1-in-10 surprise level (the likelihood method's 1.0)
one score in ten is above it on a perfectly normal channel, so "below `clear` for
off_delay_s" never holds at 10 Hz. The clear condition is therefore stated in model
steps (each score is one step, whatever the period: 10 Hz or 5 minutes): the last
``clear_steps`` scores hold no score at or above ``set`` and at most a share
``clear_share`` of them at or above ``clear``. docs/alarms.md, "Score rules".
"""

from __future__ import annotations

import math
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

_LOW, _HIGH, _SETTING = 0, 1, 2
"""What one score in the window was: below clear, at or above clear, at or above set."""


class ScoreRule(LevelRule):
    """m is the channel's anomaly score, one per model step; the rule keeps its state
    while the scorer is not warm (no score) and for ``warmup_s`` after its first score.
    Set: a score >= set. Clear: the last ``clear_steps`` scores hold none >= set and at
    most ``clear_share`` of them >= clear (then off_delay_s, in seconds, still applies)."""

    type: Literal["score_above"]
    """The rule type (formerly `kind`)."""
    clear_steps: Annotated[int, Field(ge=1, le=100_000)] = 1
    """Scores (model steps) the clear condition looks back over; 1: the last score only."""
    clear_share: Annotated[float, Field(ge=0, lt=1)] = 0.0
    """Share of those scores allowed at or above `clear` (0.05: 5 %)."""
    warmup_s: Annotated[float, Field(ge=0)] = 0.0
    """Seconds (on the samples' timestamps) after the channel's first score during which
    the rule ignores its scores: the detector is warm in steps (its own warm-up) but has
    not yet seen the channel's normal range (a process cycle, a day)."""

    def check(self, horizons: Sequence[int]) -> ScoreCheck:
        return ScoreCheck(self)


class ScoreCheck(LevelCheck):
    """The last ``clear_steps`` scores as a ring of bytes (_LOW/_HIGH/_SETTING) with a
    running count of each kind: nothing allocated per score."""

    __slots__ = (
        "_allowed",
        "_highs",
        "_pos",
        "_ring",
        "_seen",
        "_sets",
        "_steps",
        "_warm_from",
        "_warmup_s",
    )
    label = " score"

    def __init__(self, rule: ScoreRule) -> None:
        super().__init__(rule)
        self._steps = rule.clear_steps
        self._allowed = math.floor(rule.clear_share * rule.clear_steps + 1e-9)
        self._ring = bytearray(rule.clear_steps)
        self._pos = 0
        self._seen = 0
        self._highs = 0
        self._sets = 0
        self._warmup_s = rule.warmup_s
        self._warm_from: float | None = None
        """Timestamp of the channel's first score + warmup_s."""

    def carry_from(self, previous: Check) -> None:
        # The channel's warm-up has run (or is running) already; the window restarts,
        # since its kinds were judged against the previous levels.
        if isinstance(previous, ScoreCheck) and previous._warm_from is not None:
            self._warm_from = previous._warm_from

    def measure(
        self, value: float, forecast: Forecast | None, score: float | None, rate: float | None
    ) -> float | None:
        return score

    def on_sample(
        self,
        ts: float,
        value: float,
        forecast: Forecast | None,
        score: float | None,
        rate: float | None,
    ) -> Condition | None:
        if score is None:
            return None
        warm_from = self._warm_from
        if warm_from is None:
            self._warm_from = warm_from = ts + self._warmup_s
        if ts < warm_from:
            return None
        self.value = score
        signed = self._sign * score
        if signed >= self._set:
            kind = _SETTING
        elif signed >= self._clear:
            kind = _HIGH
        else:
            kind = _LOW
        ring = self._ring
        pos = self._pos
        old = ring[pos]
        if old == _SETTING:
            self._sets -= 1
        elif old == _HIGH:
            self._highs -= 1
        ring[pos] = kind
        self._pos = pos + 1 if pos + 1 < self._steps else 0
        if kind == _SETTING:
            self._sets += 1
            if self._seen < self._steps:
                self._seen += 1
            return _SET
        if kind == _HIGH:
            self._highs += 1
        if self._seen < self._steps:
            self._seen += 1
            if self._seen < self._steps:
                return _BETWEEN
        if self._sets == 0 and self._highs <= self._allowed:
            return _CLEAR
        return _BETWEEN
