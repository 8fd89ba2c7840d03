"""Rules on the channel's health: "health"."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Literal

from pydantic import Field

from edge_agent.alarms.model import HealthCondition
from edge_agent.alarms.rules.base import Check, Condition, Input, RuleConfig


class HealthRule(RuleConfig):
    """Raised while the channel (or its source) is in any of ``conditions``; cleared when
    none holds."""

    type: Literal["health"]
    """The rule type (formerly `kind`)."""
    conditions: Annotated[list[HealthCondition], Field(min_length=1)] = Field(
        default_factory=lambda: list(HealthCondition)
    )

    def check(self, horizons: Sequence[int]) -> HealthCheck:
        return HealthCheck(frozenset(self.conditions))


class HealthCheck(Check):
    __slots__ = ("_holding", "_watched")
    watches = frozenset({Input.HEALTH})

    def __init__(self, watched: frozenset[HealthCondition]) -> None:
        super().__init__()
        self._watched = watched
        self._holding: frozenset[HealthCondition] = frozenset()

    def on_health(self, conditions: frozenset[HealthCondition]) -> Condition:
        if self._watched.isdisjoint(conditions):
            return Condition.CLEAR
        self._holding = conditions
        return Condition.SET

    def holding(self) -> tuple[str, ...]:
        return tuple(sorted(self._watched & self._holding))

    def describe(self, channel: str) -> str:
        return f"{channel} health: {', '.join(sorted(self._watched & self._holding))}"
