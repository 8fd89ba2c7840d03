"""Rules on the rate of change: "rate_above"."""

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


class RateRule(LevelRule):
    """m is |Δvalue/Δt| over the last two processed samples, channel units per second;
    the rule keeps its state on the first sample of a window (no rate yet)."""

    type: Literal["rate_above"]
    """The rule type (formerly `kind`)."""

    def check(self, horizons: Sequence[int]) -> RateCheck:
        return RateCheck(self)


class RateCheck(LevelCheck):
    __slots__ = ()
    label = " |rate|"

    def measure(
        self, value: float, forecast: Forecast | None, score: float | None, rate: float | None
    ) -> float | None:
        return None if rate is None else abs(rate)

    def on_sample(
        self, value: float, forecast: Forecast | None, score: float | None, rate: float | None
    ) -> Condition | None:
        # LevelCheck.on_sample without the measure() call: this runs on every sample.
        if rate is None:
            return None
        m = abs(rate)
        self.value = m
        signed = self._sign * m
        if signed >= self._set:
            return _SET
        if signed < self._clear:
            return _CLEAR
        return _BETWEEN
