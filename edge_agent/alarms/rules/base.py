"""What every alarm rule type shares: the common keys, the check a rule becomes in the
engine, and for rules on a level (value, rate, score, forecast) the levels, their
hysteresis check and their comparison, stated once.

A rule type says how its input (a processed sample, or the channel's health) becomes a
``Condition`` and a value; the engine owns what every type has in common: the on- and
off-delays, one alarm per (rule, channel), the alarm's states and events.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from enum import Enum
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Self

import numpy as np
import numpy.typing as npt
from pydantic import Field, ValidationError, model_validator

from edge_agent.alarms.model import HealthCondition, Severity
from edge_agent.errors import OverrideRefused
from edgetwin_common.config import Name, Strict
from edgetwin_common.errors import ConfigProblem

if TYPE_CHECKING:
    from edge_agent.alarms.rules.cross import CrossReading

ALL_CHANNELS = "*"
"""A rule's ``channel`` for every channel, each with its own alarm."""

OVERRIDABLE_FIELDS = frozenset({"set", "clear", "on_delay_s", "off_delay_s", "severity"})
"""What the cloud's desired state may change on a rule: levels, delays, severity."""


class Condition(Enum):
    """What a rule's input says, for the engine's delays and hysteresis (None instead:
    the input says nothing to the rule, e.g. no score yet, and nothing changes)."""

    SET = "set"
    """The set condition holds: raise once it has held for on_delay_s."""
    CLEAR = "clear"
    """The clear condition holds: clear once it has held for off_delay_s."""
    BETWEEN = "between"
    """Neither (inside the hysteresis band): a running delay stops."""


# Looking a member up on its Enum class costs more than the comparisons around it
# (Python 3.11); the per-sample path uses these.
_SET, _CLEAR, _BETWEEN = Condition.SET, Condition.CLEAR, Condition.BETWEEN


class Input(Enum):
    """What a check can watch."""

    SAMPLES = "samples"
    """Processed samples: value, forecast, score, rate (``on_sample``)."""
    HEALTH = "health"
    """The channel's health conditions (``on_health``)."""
    CROSS = "cross"
    """The channel's cross-channel surprise, once per twin period (``on_cross``)."""


Forecast = npt.NDArray[np.float64]


class Check(ABC):
    """A rule bound to the model's horizons, for one channel: turns each input it
    ``watches`` into a Condition. ``value`` is what the last input measured (the alarm's
    value: a reading, |rate|, score or forecast; None for health). Not thread-safe; no
    allocation per call beyond a float."""

    __slots__ = ("value",)

    watches: ClassVar[frozenset[Input]] = frozenset()
    """The inputs the engine hands to this check (the others never reach it)."""
    trigger: ClassVar[str | None] = None
    """The reason's trigger; None: the rule type's first word ("value" of value_above)."""

    def __init__(self) -> None:
        self.value: float | None = None

    def on_sample(
        self,
        ts: float,
        value: float,
        forecast: Forecast | None,
        score: float | None,
        rate: float | None,
    ) -> Condition | None:
        """One processed sample (see ``AlarmEngine.on_sample`` for units); called when
        ``watches`` has SAMPLES."""
        return None

    def on_health(self, conditions: frozenset[HealthCondition]) -> Condition | None:
        """Everything wrong with the channel now (empty: healthy); called when ``watches``
        has HEALTH."""
        return None

    def on_cross(self, ts: float, reading: CrossReading) -> Condition | None:
        """The channel's cross-channel surprise at the end of a twin period (``ts``, UNIX
        s); called when ``watches`` has CROSS."""
        return None

    def reason_parts(self) -> Mapping[str, float] | None:
        """The parts of the alarm's reason when the check has its own (a cross rule: the
        twin's prediction and what it left unexplained); None: the channel's score's."""
        return None

    @abstractmethod
    def describe(self, channel: str) -> str:
        """The alarm's default message when this check raises it, e.g. "bearing 87.2 >= 85"."""

    def limit(self) -> float | None:
        """The level whose crossing raises the alarm (None: not a level rule)."""
        return None

    def holding(self) -> tuple[str, ...]:
        """What held when the alarm was raised, for its reason (health conditions)."""
        return ()

    def use_step_period(self, step_s: float | None) -> None:
        """Seconds between two model steps on the channel (None: unknown), for checks
        that state horizons in time; the others ignore it."""
        return None

    def carry_from(self, previous: Check) -> None:
        """Take over what ``previous`` (the check this one replaces, same rule type, on
        the same channel) learned of the channel, when a rule's levels are overridden:
        history and warm-up are the channel's, not the levels'. Default: nothing."""
        return None


class RuleConfig(Strict, ABC):
    """Keys every rule has. A rule type derives from this (or from ``LevelRule``) with
    ``type: Literal[...]`` and implements ``check``."""

    type: str
    """The rule type (replaces `kind`, still read with a deprecation message)."""
    name: Name
    channel: Annotated[str, Field(min_length=1)]
    """A channel name, or "*" for every channel."""
    severity: Severity = Severity.WARNING
    on_delay_s: Annotated[float, Field(ge=0)] = 0.0
    """The condition must hold this long before the alarm is raised."""
    off_delay_s: Annotated[float, Field(ge=0)] = 0.0
    """The clear condition must hold this long before the alarm clears."""
    actions: list[str] = Field(default_factory=lambda: ["log"])
    """Names of [[actions]] to notify on raise, acknowledge and clear."""
    message: str = ""

    @abstractmethod
    def check(self, horizons: Sequence[int]) -> Check:
        """A new check of this rule for one channel. horizons: the model's forecast
        horizons, samples ahead; call ``problems`` first (a check of a rule with problems
        may raise)."""

    def problems(self, horizons: Sequence[int]) -> list[ConfigProblem]:
        """What makes this rule unfit for a model with these horizons (paths relative to
        the rule, e.g. "within_samples"); default: nothing."""
        return []

    def overridden(self, changes: Mapping[str, Any]) -> Self:
        """This rule with some of ``OVERRIDABLE_FIELDS`` changed, validated exactly like
        the config (hysteresis direction, non-negative delays, known severity; a field
        the type does not have is refused). Raises OverrideRefused saying why."""
        unknown = sorted(set(changes) - OVERRIDABLE_FIELDS)
        if unknown:
            raise OverrideRefused(f"cannot override {', '.join(unknown)}")
        try:
            return self.model_validate({**self.model_dump(), **changes})
        except ValidationError as exc:
            raise OverrideRefused(_reason(exc)) from None


class LevelRule(RuleConfig):
    """A rule on a measured level m: "*_above" types set at m >= set and clear at
    m < clear, "*_below" types set at m <= set and clear at m > clear."""

    set: float
    """Level at which the alarm sets."""
    clear: float | None = None
    """Level at which it clears (hysteresis); default: the set level."""

    @property
    def is_below(self) -> bool:
        """A "*_below" type: the alarm is on the low side of ``set``."""
        return self.type.endswith("_below")

    @model_validator(mode="after")
    def _hysteresis_direction(self) -> Self:
        if self.clear is None:
            return self
        if self.is_below:
            backwards, side = self.clear < self.set, ">="
        else:
            backwards, side = self.clear > self.set, "<="
        if backwards:
            raise ValueError(
                f"clear ({self.clear}) must be {side} set ({self.set}) for {self.type}"
            )
        return self


class LevelCheck(Check):
    """A level rule's check: what ``measure`` returns, compared with the rule's levels.
    "below" rules compare -m with -set and -clear, so one comparison serves both sides."""

    __slots__ = ("_clear", "_set", "_shown_set", "_sign")

    watches = frozenset({Input.SAMPLES})
    label: ClassVar[str] = ""
    """What the default message calls m after the channel name, e.g. " |rate|"."""

    def __init__(self, rule: LevelRule) -> None:
        super().__init__()
        self._sign = -1.0 if rule.is_below else 1.0
        self._set = self._sign * rule.set
        self._clear = self._sign * (rule.set if rule.clear is None else rule.clear)
        self._shown_set = rule.set

    @abstractmethod
    def measure(
        self, value: float, forecast: Forecast | None, score: float | None, rate: float | None
    ) -> float | None:
        """m for this sample; None when the sample has none (the rule keeps its state)."""

    def on_sample(
        self,
        ts: float,
        value: float,
        forecast: Forecast | None,
        score: float | None,
        rate: float | None,
    ) -> Condition | None:
        m = self.measure(value, forecast, score, rate)
        if m is None:
            return None
        self.value = m
        signed = self._sign * m
        if signed >= self._set:
            return _SET
        if signed < self._clear:
            return _CLEAR
        return _BETWEEN

    def limit(self) -> float | None:
        return self._shown_set

    def describe(self, channel: str) -> str:
        op = "<=" if self._sign < 0 else ">="
        return f"{channel}{self.label} {self.value:.6g} {op} {self._shown_set:g}"


def _reason(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"])
        message = str(err["msg"]).removeprefix("Value error, ")
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts)
