"""Rules on the anomaly score (docs/anomaly-score.md): "score_above"."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from edge_agent.alarms.rules.base import Forecast, LevelCheck, LevelRule


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
