"""Rules on the anomaly score (docs/anomaly-score.md): "score_above"."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from edge_agent.alarms.rules.base import (
    _BETWEEN,
    _CLEAR,
    _SET,
    Condition,
    Forecast,
    LevelCheck,
    LevelRule,
)


class ScoreRule(LevelRule):
    """m is the channel's anomaly score; the rule keeps its state while the score warms
    up (no score yet)."""

    type: Literal["score_above"]
    """The rule type (formerly `kind`)."""

    def check(self, horizons: Sequence[int]) -> ScoreCheck:
        return ScoreCheck(self)


class ScoreCheck(LevelCheck):
    __slots__ = ()
    label = " score"

    def measure(
        self, value: float, forecast: Forecast | None, score: float | None, rate: float | None
    ) -> float | None:
        return score

    def on_sample(
        self, value: float, forecast: Forecast | None, score: float | None, rate: float | None
    ) -> Condition | None:
        # LevelCheck.on_sample without the measure() call: this runs on every sample.
        if score is None:
            return None
        m = score
        self.value = m
        signed = self._sign * m
        if signed >= self._set:
            return _SET
        if signed < self._clear:
            return _CLEAR
        return _BETWEEN
