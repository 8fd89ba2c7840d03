"""Rules on the processed (cleaned, resampled) value: "value_above", "value_below"."""

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


class ValueRule(LevelRule):
    """m is the processed value, in the channel's units."""

    type: Literal["value_above", "value_below"]
    """The rule type (formerly `kind`)."""

    def check(self, horizons: Sequence[int]) -> ValueCheck:
        return ValueCheck(self)


class ValueCheck(LevelCheck):
    __slots__ = ()

    def measure(
        self, value: float, forecast: Forecast | None, score: float | None, rate: float | None
    ) -> float:
        return value

    def on_sample(
        self,
        ts: float,
        value: float,
        forecast: Forecast | None,
        score: float | None,
        rate: float | None,
    ) -> Condition | None:
        # LevelCheck.on_sample without the measure() call: this runs on every sample.
        m = value
        self.value = m
        signed = self._sign * m
        if signed >= self._set:
            return _SET
        if signed < self._clear:
            return _CLEAR
        return _BETWEEN
