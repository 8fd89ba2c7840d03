"""AlarmEngine.override_rules: levels, delays and severity by rule name, validated like
the config, reverting rules no longer named."""

from __future__ import annotations

from edge_agent.alarms.model import AlarmEvent
from edge_agent.alarms.rules.forecast import ForecastRule
from edge_agent.alarms.rules.health import HealthRule
from edge_agent.alarms.rules.value import ValueRule

from .helpers import make_engine


def rules() -> list[ValueRule | ForecastRule | HealthRule]:
    return [
        ValueRule(name="hot", channel="*", type="value_above", set=80, clear=75),
        ValueRule(name="cold", channel="temp", type="value_below", set=5, on_delay_s=10),
        ForecastRule(name="trend", channel="temp", type="forecast_above", set=90),
        HealthRule(name="stale", channel="temp", type="health"),
    ]


def test_override_changes_levels_of_running_slots_and_reverts() -> None:
    events: list[AlarmEvent] = []
    engine = make_engine(rules(), sink=events.append)
    engine.on_sample("temp", 0.0, 20.0)  # slots exist before the override
    assert engine.override_rules({"hot": {"set": 100, "clear": 95, "severity": "critical"}}) == {}
    engine.on_sample("temp", 1.0, 90.0)
    engine.on_sample("other", 1.0, 90.0)  # a "*" channel seen only after the override
    assert events == []
    engine.on_sample("temp", 2.0, 101.0)
    assert [(e.alarm.rule, e.alarm.severity.value) for e in events] == [("hot", "critical")]
    # Clearing follows the new clear level.
    engine.on_sample("temp", 3.0, 96.0)
    assert len(events) == 1
    engine.on_sample("temp", 4.0, 94.0)
    assert [e.kind.value for e in events] == ["raised", "cleared"]
    # Not named any more: back to the config.
    assert engine.override_rules({}) == {}
    assert engine.rule("hot").set == 80
    engine.on_sample("temp", 5.0, 85.0)
    assert [e.kind.value for e in events][-1] == "raised"


def test_override_validates_like_the_config() -> None:
    engine = make_engine(rules())
    refused = engine.override_rules(
        {
            "hot": {"set": 70},  # clear 75 > set 70: backwards hysteresis
            "cold": {"clear": 1},  # value_below: clear below set
            "stale": {"set": 1},  # a health rule has no levels
            "trend": {"on_delay_s": -1},
            "ghost": {"set": 1},
        }
    )
    assert set(refused) == {"hot", "cold", "stale", "trend", "ghost"}
    assert "must be <= set" in refused["hot"]
    assert "must be >= set" in refused["cold"]
    assert "set" in refused["stale"]
    assert "on_delay_s" in refused["trend"]
    assert "no alarm rule named 'ghost'" in refused["ghost"]
    # Refused: the configured values stay.
    assert engine.rule("hot").set == 80 and engine.rule("cold").clear is None


def test_override_of_delays_and_a_health_rule_severity() -> None:
    engine = make_engine(rules())
    assert (
        engine.override_rules(
            {"cold": {"on_delay_s": 0, "off_delay_s": 5}, "stale": {"severity": "info"}}
        )
        == {}
    )
    assert engine.rule("cold").on_delay_s == 0 and engine.rule("cold").off_delay_s == 5
    assert engine.rule("stale").severity == "info"
    assert engine.override_rules({"hot": {"message": "x"}}) == {"hot": "cannot override message"}
