"""The registry of alarm rule types (edge_agent/alarms/rules/registry.py): every
registered type round-trips its config, is in the generated configuration reference,
and raises and clears through the engine (its scenario below); the old `kind` spelling
still works with one deprecation line."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
from pydantic import TypeAdapter, ValidationError

from edge_agent.alarms.model import AlarmEventKind, HealthCondition
from edge_agent.alarms.rules.base import LevelRule
from edge_agent.alarms.rules.cross import CrossReading
from edge_agent.alarms.rules.registry import RULE_KEYS, RULE_TYPES, AlarmRule
from edge_agent.config import parse_config
from tests.conftest import REPO
from tests.edge_agent.alarms.conftest import build

RULE: TypeAdapter[AlarmRule] = TypeAdapter(AlarmRule)


@dataclass(frozen=True)
class Sample:
    """Keyword arguments of ``AlarmEngine.on_sample`` besides channel and ts."""

    value: float = 50.0
    forecast: list[float] | None = None
    score: float | None = None
    rate: float | None = None

    def feed(self, rig: Any, ts: float) -> None:
        forecast = None if self.forecast is None else np.array(self.forecast)
        rig.engine.on_sample("c", ts, self.value, forecast, self.score, self.rate)


@dataclass(frozen=True)
class Health:
    conditions: frozenset[HealthCondition] = field(default_factory=frozenset)

    def feed(self, rig: Any, ts: float) -> None:
        rig.engine.on_health("c", ts, self.conditions)


@dataclass(frozen=True)
class Cross:
    """A cross-channel reading (``AlarmEngine.on_cross``)."""

    reading: CrossReading

    def feed(self, rig: Any, ts: float) -> None:
        rig.engine.on_cross("c", ts, self.reading)


def _cross(surprise: float, unexplained: float) -> Cross:
    return Cross(CrossReading(surprise, 55.0, 54.6, unexplained, 10, 60.0, ("load",), "°C"))


Input = Sample | Health | Cross


@dataclass(frozen=True)
class Scenario:
    settings: dict[str, Any]
    """The rule's own keys (name, channel and type are added)."""
    raises: tuple[Input, ...]
    """Inputs, one a second: the last one raises."""
    clears: tuple[Input, ...]
    """Inputs after those: the last one clears."""
    value: float | None
    """The raised alarm's value."""


SCENARIOS = {
    "value_above": Scenario({"set": 85.0, "clear": 80.0}, (Sample(90.0),), (Sample(79.0),), 90.0),
    "value_below": Scenario({"set": 1.0, "clear": 1.5}, (Sample(0.5),), (Sample(1.6),), 0.5),
    "rate_above": Scenario(
        {"set": 5.0, "clear": 2.0}, (Sample(50.0), Sample(44.0)), (Sample(43.0),), 6.0
    ),
    "score_above": Scenario({"set": 8.0}, (Sample(score=9.0),), (Sample(score=1.0),), 9.0),
    "forecast_above": Scenario(
        {"set": 85.0, "within_samples": 2},
        (Sample(forecast=[80.0, 86.0, 99.0]),),
        (Sample(forecast=[80.0, 84.0, 99.0]),),
        86.0,
    ),
    "forecast_below": Scenario(
        {"set": 0.0, "clear": 1.0},
        (Sample(forecast=[2.0, -1.0, 3.0]),),
        (Sample(forecast=[2.0] * 3),),
        -1.0,
    ),
    "cross_above": Scenario(
        {"set": 2.5, "clear": 1.0, "clear_steps": 1, "min_unexplained": 1.0},
        (_cross(9.0, 0.5), _cross(3.0, 2.0)),  # surprising, but under min_unexplained
        (_cross(0.5, 2.0),),
        3.0,
    ),
    "health": Scenario(
        {"conditions": ["stale"]},
        (Health(frozenset({HealthCondition.STALE})),),
        (Health(frozenset({HealthCondition.STUCK})),),
        None,
    ),
}
"""One raise-and-clear scenario per registered rule type: a type without one fails
``test_every_rule_type_has_a_scenario``."""


def config_of(key: str) -> dict[str, Any]:
    return {"name": f"r-{key}", "channel": "c", "type": key, **SCENARIOS[key].settings}


def test_every_rule_type_has_a_scenario() -> None:
    assert set(SCENARIOS) == set(RULE_KEYS)
    assert len(RULE_KEYS) == len(set(RULE_KEYS)), "two rule types claim the same key"


@pytest.mark.parametrize("key", RULE_KEYS)
def test_a_rule_type_raises_and_clears_through_the_engine(key: str) -> None:
    scenario = SCENARIOS[key]
    rig = build([config_of(key)], horizons=(1, 2, 4))
    watched = scenario.raises[0]
    other = Health(frozenset(HealthCondition)) if isinstance(watched, Sample) else Sample()
    other.feed(rig, 0.0)  # the input the type does not watch moves nothing
    inputs = scenario.raises + scenario.clears
    for ts, given in enumerate(inputs, start=1):
        given.feed(rig, float(ts))
    assert [(e.kind, e.ts) for e in rig.events] == [
        (AlarmEventKind.RAISED, float(len(scenario.raises))),
        (AlarmEventKind.CLEARED, float(len(inputs))),
    ]
    alarm = rig.events[0].alarm
    assert (alarm.kind, alarm.value, alarm.rule) == (key, scenario.value, f"r-{key}")
    assert alarm.message.startswith("c ")


@pytest.mark.parametrize("key", RULE_KEYS)
def test_a_rule_config_round_trips(key: str) -> None:
    rule = RULE.validate_python(config_of(key))
    assert type(rule) in RULE_TYPES and rule.type == key
    assert RULE.validate_python(rule.model_dump()) == rule
    assert RULE.validate_json(RULE.dump_json(rule)) == rule


@pytest.mark.parametrize("model", RULE_TYPES, ids=lambda m: m.__name__)
def test_every_rule_type_is_in_the_configuration_reference(model: type) -> None:
    doc = (REPO / "docs" / "configuration.md").read_text()
    own = [k for k in RULE_KEYS if type(RULE.validate_python(config_of(k))) is model]
    keys = ", ".join(f'"{k}"' for k in own)
    assert f"## `[[alarms]]` with type = {keys}\n" in doc


@pytest.mark.parametrize("key", [k for k in RULE_KEYS if k.endswith(("_above", "_below"))])
def test_every_level_type_refuses_backwards_hysteresis(key: str) -> None:
    above = key.endswith("_above")
    backwards = {**config_of(key), "set": 10.0, "clear": 12.0 if above else 8.0}
    with pytest.raises(ValidationError, match="must be <= set" if above else "must be >= set"):
        RULE.validate_python(backwards)
    assert isinstance(RULE.validate_python(config_of(key)), LevelRule)


def test_kind_is_read_as_type_with_one_deprecation_line(caplog: pytest.LogCaptureFixture) -> None:
    """Loading a config with the old spelling logs one line naming the rule and the new
    key; validating alone (no file loaded) says nothing: validation does no I/O."""
    common = {"name": "hot", "channel": "*", "set": 85.0}
    with caplog.at_level(logging.WARNING):
        rule = RULE.validate_python({**common, "kind": "value_above"})
    assert caplog.records == []
    assert rule == RULE.validate_python({**common, "type": "value_above"})
    text = '[[alarms]]\nname = "hot"\nchannel = "*"\nkind = "value_above"\nset = 85.0\n'
    with caplog.at_level(logging.WARNING):
        config = parse_config(text, "agent.toml")
    [line] = [r.getMessage() for r in caplog.records]
    assert line == "agent.toml: [[alarms]] 'hot': kind is deprecated, use type"
    assert config.alarms[0].type == "value_above"


def test_kind_and_type_together_are_refused() -> None:
    both = {"name": "hot", "channel": "*", "kind": "value_above", "type": "value_above", "set": 1}
    with pytest.raises(ValidationError, match="kind"):
        RULE.validate_python(both)
