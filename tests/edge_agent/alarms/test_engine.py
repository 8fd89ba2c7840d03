"""AlarmEngine: rule kinds, hysteresis, delays, dedup, states, restore (docs/alarms.md)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge_agent.alarms.model import Alarm, AlarmEventKind, AlarmState, HealthCondition, Severity
from edge_agent.errors import AlarmNotFound
from edgetwin_common.errors import ConfigInvalid
from tests.edge_agent.alarms.conftest import build

RAISED, ACKED, CLEARED = AlarmEventKind.RAISED, AlarmEventKind.ACKNOWLEDGED, AlarmEventKind.CLEARED
HOT: dict[str, Any] = {
    "name": "bearing-hot",
    "channel": "bearing",
    "type": "value_above",
    "set": 85.0,
    "clear": 80.0,
    "severity": "critical",
}


def test_value_above_raises_at_set_and_clears_below_clear() -> None:
    rig = build([HOT])
    rig.feed("bearing", [84.9, 85.0, 82.0, 80.0])
    assert rig.kinds() == [(RAISED, "bearing-hot", "bearing")]
    raised = rig.events[0].alarm
    assert raised.state is AlarmState.ACTIVE_UNACKNOWLEDGED
    assert (raised.id, raised.raised_at, raised.value) == (1, 1.0, 85.0)
    assert raised.severity is Severity.CRITICAL and raised.kind == "value_above"
    assert raised.message == "bearing 85 >= 85"
    rig.engine.on_sample("bearing", 4.0, 79.99)
    assert rig.kinds()[-1] == (CLEARED, "bearing-hot", "bearing")
    assert rig.events[-1].alarm.cleared_at == 4.0
    assert rig.events[-1].alarm.state is AlarmState.CLEARED


def test_clear_defaults_to_the_set_level() -> None:
    rig = build([{**HOT, "clear": None}])
    rig.feed("bearing", [85.0, 84.99, 85.0])
    assert [e.kind for e in rig.events] == [RAISED, CLEARED, RAISED]


def test_value_below_is_mirrored() -> None:
    rule = {"name": "oil-low", "channel": "oil", "type": "value_below", "set": 1.0, "clear": 1.5}
    rig = build([rule])
    rig.feed("oil", [1.2, 1.0, 1.4, 1.5, 1.51])
    assert [(e.kind, e.ts) for e in rig.events] == [(RAISED, 1.0), (CLEARED, 4.0)]


def test_rate_above_uses_the_magnitude_and_holds_without_a_rate() -> None:
    rule = {"name": "fast", "channel": "t", "type": "rate_above", "set": 5.0, "clear": 2.0}
    rig = build([rule])
    rig.engine.on_sample("t", 0.0, 1.0)  # no history yet: no rate
    rig.engine.on_sample("t", 1.0, -5.0)
    rig.engine.on_sample("t", 0.5, 100.0)  # time went back: the history restarts
    rig.engine.on_sample("t", 1.5, 103.0)  # 3/s: between the levels
    rig.engine.on_sample("t", 2.5, 102.0)
    assert [(e.kind, e.ts) for e in rig.events] == [(RAISED, 1.0), (CLEARED, 2.5)]
    assert rig.events[0].alarm.value == 6.0
    assert rig.events[0].alarm.message == "t |rate| 6 >= 5"


def test_score_above_holds_during_warm_up() -> None:
    rule = {"name": "odd", "channel": "t", "type": "score_above", "set": 8.0, "clear": 3.0}
    rig = build([rule])
    for ts, score in enumerate([None, 9.0, None, 5.0, 2.9]):
        rig.engine.on_sample("t", float(ts), 20.0, score=score)
    assert [(e.kind, e.ts) for e in rig.events] == [(RAISED, 1.0), (CLEARED, 4.0)]


@pytest.mark.parametrize(
    ("within", "raises"),
    [(1, False), (2, False), (3, False), (4, True), (None, True), (100, True)],
)
def test_forecast_above_looks_only_at_horizons_within_the_limit(
    within: int | None, raises: bool
) -> None:
    rule = {**HOT, "type": "forecast_above", "within_samples": within}
    rig = build([rule], horizons=(1, 2, 4, 8))
    rig.engine.on_sample("bearing", 0.0, 70.0, forecast=np.array([80.0, 84.0, 86.0, 95.0]))
    assert [e.kind for e in rig.events] == ([RAISED] if raises else [])
    if raises:
        expected = 86.0 if within == 4 else 95.0
        assert rig.events[0].alarm.value == expected


def test_forecast_rule_handles_unordered_horizons_and_holds_without_a_forecast() -> None:
    rule = {**HOT, "type": "forecast_above", "within_samples": 2}
    rig = build([rule], horizons=(8, 1, 4, 2))
    rig.engine.on_sample("bearing", 0.0, 70.0, forecast=np.array([99.0, 70.0, 99.0, 86.0]))
    rig.engine.on_sample("bearing", 1.0, 70.0, forecast=None)
    rig.engine.on_sample("bearing", 2.0, 70.0, forecast=np.array([99.0, 70.0, 99.0, 79.0]))
    assert [(e.kind, e.ts, e.alarm.value) for e in rig.events] == [
        (RAISED, 0.0, 86.0),
        (CLEARED, 2.0, 86.0),
    ]
    assert "within 2 samples" in rig.events[0].alarm.message


def test_forecast_below_takes_the_minimum() -> None:
    rule = {"name": "freeze", "channel": "w", "type": "forecast_below", "set": 0.0, "clear": 1.0}
    rig = build([rule], horizons=(1, 2))
    rig.engine.on_sample("w", 0.0, 3.0, forecast=np.array([2.0, -0.5]))
    rig.engine.on_sample("w", 1.0, 3.0, forecast=np.array([2.0, 1.0]))
    rig.engine.on_sample("w", 2.0, 3.0, forecast=np.array([2.0, 1.1]))
    assert [(e.kind, e.ts) for e in rig.events] == [(RAISED, 0.0), (CLEARED, 2.0)]


def test_a_forecast_rule_that_selects_no_horizon_is_a_config_problem() -> None:
    rule = {**HOT, "type": "forecast_above", "within_samples": 3}
    with pytest.raises(ConfigInvalid) as info:
        build([rule], horizons=(4, 8))
    [problem] = info.value.problems
    assert problem.path == "alarms.0.within_samples"
    assert "4, 8" in problem.message


def test_unknown_actions_and_duplicate_names_are_config_problems() -> None:
    with pytest.raises(ConfigInvalid) as info:
        build([{**HOT, "actions": ["log", "siren"]}, HOT])
    assert [p.path for p in info.value.problems] == ["alarms.0.actions", "alarms.1.name"]


@given(st.lists(st.floats(80.0, 85.0, exclude_max=True), min_size=1, max_size=200))
def test_no_chattering_inside_the_hysteresis_band(band: list[float]) -> None:
    rig = build([HOT])
    rig.feed("bearing", [90.0, *band])  # raised once, then never cleared inside the band
    assert [e.kind for e in rig.events] == [RAISED]
    rig.feed("bearing", [70.0, *band], t0=1000.0)  # cleared once, then never raised again
    assert [e.kind for e in rig.events] == [RAISED, CLEARED]


@given(st.lists(st.floats(70.0, 95.0), max_size=300))
def test_raises_and_clears_alternate_and_each_re_raise_needs_a_full_swing(
    values: list[float],
) -> None:
    rig = build([HOT])
    rig.feed("bearing", values)
    kinds = [e.kind for e in rig.events]
    assert kinds == [RAISED, CLEARED] * (len(kinds) // 2) + [RAISED] * (len(kinds) % 2)
    for clear, again in zip(rig.events[1::2], rig.events[2::2], strict=False):
        between = values[int(clear.ts) : int(again.ts) + 1]
        assert min(between) < 80.0 and between[-1] >= 85.0


def test_on_delay_ignores_a_short_excursion() -> None:
    rig = build([{**HOT, "on_delay_s": 5.0}])
    rig.feed("bearing", [70.0, 90.0, 90.0, 90.0, 90.0, 70.0, 90.0, 90.0])  # 4 s, then 2 s
    assert rig.events == []
    rig.feed("bearing", [70.0] + [90.0] * 6, t0=20.0)
    assert [(e.kind, e.ts) for e in rig.events] == [(RAISED, 26.0)]


def test_on_delay_is_not_reset_inside_the_band_only_below_set() -> None:
    rig = build([{**HOT, "on_delay_s": 2.0}])
    rig.feed("bearing", [90.0, 84.0, 90.0, 90.0, 90.0])
    assert [(e.kind, e.ts) for e in rig.events] == [(RAISED, 4.0)]


def test_off_delay_clears_only_after_the_clear_condition_held() -> None:
    rig = build([{**HOT, "off_delay_s": 3.0}])
    rig.feed("bearing", [90.0, 70.0, 70.0, 82.0, 70.0, 70.0, 70.0, 70.0])
    assert [(e.kind, e.ts) for e in rig.events] == [(RAISED, 0.0), (CLEARED, 7.0)]


def test_one_active_alarm_per_rule_and_channel_and_new_ids_after_a_clear() -> None:
    rig = build([HOT], next_id=41)
    rig.feed("bearing", [90.0] * 10 + [70.0] + [90.0] * 3)
    assert [(e.kind, e.alarm.id) for e in rig.events] == [(RAISED, 41), (CLEARED, 41), (RAISED, 42)]
    assert [a.id for a in rig.engine.active()] == [42]
    assert rig.engine.next_id == 43


def test_acknowledge_before_clear() -> None:
    rig = build([HOT])
    rig.feed("bearing", [90.0])
    acked = rig.engine.acknowledge(1, ts=5.0, by="ana")
    assert acked.state is AlarmState.ACTIVE_ACKNOWLEDGED
    assert (acked.acked_at, acked.acked_by) == (5.0, "ana")
    assert rig.engine.acknowledge(1, ts=6.0).acked_at == 5.0  # again: no change, no event
    rig.engine.on_sample("bearing", 10.0, 70.0)
    assert [e.kind for e in rig.events] == [RAISED, ACKED, CLEARED]
    assert rig.events[-1].alarm.state is AlarmState.CLEARED
    assert rig.engine.open_alarms() == []
    with pytest.raises(AlarmNotFound):
        rig.engine.acknowledge(1, ts=11.0)


def test_acknowledge_after_clear_completes_the_alarm() -> None:
    rig = build([HOT])
    rig.feed("bearing", [90.0, 70.0])
    assert rig.engine.active() == []
    [waiting] = rig.engine.open_alarms()
    assert waiting.state is AlarmState.CLEARED and waiting.acked_at is None
    done = rig.engine.acknowledge(1, ts=9.0, by="bo")
    assert done.state is AlarmState.CLEARED and done.acked_by == "bo"
    assert [e.kind for e in rig.events] == [RAISED, CLEARED, ACKED]
    assert rig.engine.open_alarms() == []
    with pytest.raises(AlarmNotFound):
        rig.engine.get(1)


def test_acknowledging_an_unknown_alarm_raises() -> None:
    with pytest.raises(AlarmNotFound):
        build([HOT]).engine.acknowledge(7, ts=0.0)


def test_events_go_to_the_sink_and_the_rules_actions_as_snapshots() -> None:
    rig = build([{**HOT, "actions": ["pager"]}])
    rig.feed("bearing", [90.0, 70.0])
    assert rig.log.events == []
    assert rig.pager.events == rig.events
    first = rig.events[0].alarm
    assert first.state is AlarmState.ACTIVE_UNACKNOWLEDGED and first.cleared_at is None
    rig.engine.acknowledge(1, ts=3.0)
    assert [e.kind for e in rig.pager.events] == [RAISED, CLEARED, ACKED]
    assert rig.events[0].alarm.acked_at is None  # earlier snapshots stay as they were


def test_star_rules_apply_to_every_channel_separately() -> None:
    star = {**HOT, "name": "any-hot", "channel": "*", "severity": "warning"}
    rig = build([HOT, star])
    rig.engine.on_sample("bearing", 0.0, 90.0)
    rig.engine.on_sample("motor", 0.0, 90.0)
    rig.engine.on_sample("motor", 1.0, 90.0)
    assert sorted(rig.kinds()) == [
        (RAISED, "any-hot", "bearing"),
        (RAISED, "any-hot", "motor"),
        (RAISED, "bearing-hot", "bearing"),
    ]
    assert rig.engine.channel_state("bearing") == "critical:bearing-hot|warning:any-hot"
    assert rig.engine.channel_state("motor") == "warning:any-hot"
    assert rig.engine.channel_state("pump") == ""
    rig.engine.on_sample("bearing", 2.0, 70.0)
    assert rig.engine.channel_state("bearing") == ""


HEALTH: dict[str, Any] = {"name": "sensor", "channel": "*", "type": "health"}


@pytest.mark.parametrize("condition", list(HealthCondition))
def test_health_rule_raises_on_each_condition_and_clears_when_healthy(
    condition: HealthCondition,
) -> None:
    rig = build([HEALTH])
    rig.engine.on_health("bearing", 0.0, frozenset())
    rig.engine.on_health("bearing", 1.0, frozenset({condition}))
    rig.engine.on_health("bearing", 2.0, frozenset({condition}))
    rig.engine.on_health("bearing", 3.0, frozenset())
    assert [(e.kind, e.ts) for e in rig.events] == [(RAISED, 1.0), (CLEARED, 3.0)]
    alarm = rig.events[0].alarm
    assert alarm.kind == "health" and alarm.value is None
    assert alarm.message == f"bearing health: {condition.value}"


def test_health_rule_only_watches_its_conditions_and_honours_delays() -> None:
    rule = {**HEALTH, "conditions": ["stale"], "on_delay_s": 10.0}
    rig = build([rule])
    rig.engine.on_health("bearing", 0.0, frozenset({HealthCondition.STUCK}))
    rig.engine.on_health("bearing", 1.0, frozenset({HealthCondition.STALE}))
    rig.engine.on_health("bearing", 5.0, frozenset({HealthCondition.STALE}))
    assert rig.events == []
    rig.engine.on_health("bearing", 11.0, frozenset(HealthCondition))
    assert [(e.kind, e.ts, e.alarm.message) for e in rig.events] == [
        (RAISED, 11.0, "bearing health: stale")
    ]


def test_health_and_sample_rules_do_not_mix() -> None:
    rig = build([HOT, HEALTH])
    rig.engine.on_sample("bearing", 0.0, 50.0)
    rig.engine.on_health("bearing", 0.0, frozenset())
    rig.engine.on_health("bearing", 1.0, frozenset({HealthCondition.DISCONNECTED}))
    rig.engine.on_sample("bearing", 1.0, 50.0)
    assert rig.kinds() == [(RAISED, "sensor", "bearing")]


def restored_alarm(**changes: Any) -> Alarm:
    alarm = Alarm(
        id=17,
        rule="bearing-hot",
        channel="bearing",
        kind="value_above",
        severity=Severity.CRITICAL,
        state=AlarmState.ACTIVE_UNACKNOWLEDGED,
        raised_at=100.0,
        value=90.0,
        message="bearing 90 >= 85",
    )
    return replace(alarm, **changes)


def test_restored_active_alarm_is_not_raised_again_and_clears_normally() -> None:
    rig = build([HOT], restored=[restored_alarm()])
    assert [a.id for a in rig.engine.active()] == [17]
    assert rig.engine.next_id == 18
    rig.feed("bearing", [90.0, 91.0], t0=200.0)
    assert rig.events == []
    assert rig.engine.channel_state("bearing") == "critical:bearing-hot"
    rig.engine.on_sample("bearing", 210.0, 70.0)
    assert [(e.kind, e.alarm.id) for e in rig.events] == [(CLEARED, 17)]
    rig.engine.on_sample("bearing", 211.0, 90.0)
    assert [(e.kind, e.alarm.id) for e in rig.events][-1] == (RAISED, 18)


def test_restored_acknowledged_and_cleared_unacknowledged_alarms() -> None:
    restored = [
        restored_alarm(state=AlarmState.ACTIVE_ACKNOWLEDGED, acked_at=101.0, acked_by="ana"),
        restored_alarm(id=9, state=AlarmState.CLEARED, cleared_at=50.0),
        restored_alarm(id=8, state=AlarmState.CLEARED, cleared_at=40.0, acked_at=45.0),
    ]
    rig = build([HOT], restored=restored, next_id=3)
    assert [a.id for a in rig.engine.open_alarms()] == [9, 17]
    assert rig.engine.acknowledge(9, ts=300.0).acked_at == 300.0
    rig.engine.on_sample("bearing", 301.0, 70.0)
    assert [(e.kind, e.alarm.id) for e in rig.events] == [(ACKED, 9), (CLEARED, 17)]
    assert rig.engine.open_alarms() == []  # 17 was acknowledged before the restart


def test_restored_alarm_of_a_removed_rule_is_cleared_when_its_channel_shows_up() -> None:
    orphan = restored_alarm(rule="old-rule")
    rig = build([HOT], restored=[orphan])
    rig.engine.on_sample("motor", 1.0, 50.0)
    assert rig.events == []
    rig.engine.on_sample("bearing", 2.0, 50.0)
    assert [(e.kind, e.alarm.id, e.ts) for e in rig.events] == [(CLEARED, 17, 2.0)]
    assert [a.id for a in rig.engine.open_alarms()] == [17]  # still awaits its ack


def test_recent_events_newest_first() -> None:
    rig = build([HOT])
    rig.feed("bearing", [90.0, 70.0, 90.0])
    assert [(e.kind, e.alarm.id) for e in rig.engine.recent(2)] == [(RAISED, 2), (CLEARED, 1)]
    assert len(rig.engine.recent()) == 3


def test_cleared_unacknowledged_alarms_beyond_the_cap_are_forgotten_and_counted() -> None:
    rig = build([{**HOT, "clear": None}], max_cleared_unacknowledged=3)
    rig.feed("bearing", [90.0, 70.0] * 5)
    assert [a.id for a in rig.engine.open_alarms()] == [3, 4, 5]
    assert rig.engine.counters == {"raised": 5, "acknowledged": 0, "cleared": 5, "forgotten": 2}


def test_the_cap_forgets_the_oldest_still_unacknowledged_alarms() -> None:
    """Acknowledged ones no longer count against the cap; the oldest of the others go."""
    rig = build([{**HOT, "clear": None}], max_cleared_unacknowledged=3)
    rig.feed("bearing", [90.0, 70.0] * 3)
    rig.engine.acknowledge(2, 1e9, "op")
    rig.feed("bearing", [90.0, 70.0] * 3)
    assert [a.id for a in rig.engine.open_alarms()] == [4, 5, 6]
    assert rig.engine.counters["forgotten"] == 2
    rig.engine.acknowledge(5, 1e9, "op")
    rig.feed("bearing", [90.0, 70.0])
    assert [a.id for a in rig.engine.open_alarms()] == [4, 6, 7]
    assert rig.engine.counters["forgotten"] == 2


def test_an_alarm_as_a_dict_holds_every_field_in_order_with_enum_values() -> None:
    from dataclasses import asdict, fields

    from edge_agent.alarms.model import Alarm, AlarmState, Severity

    alarm = Alarm(
        7, "hot", "bearing", "value_above", Severity.CRITICAL, AlarmState.CLEARED, 1.5, 90.0, "m"
    )
    alarm.acked_at, alarm.acked_by, alarm.cleared_at = 2.5, "op", 3.5
    expected = {**asdict(alarm), "severity": "critical", "state": "cleared"}
    assert list(alarm.to_dict()) == [f.name for f in fields(Alarm)]
    assert alarm.to_dict() == expected


def test_an_alarm_snapshot_is_an_equal_copy() -> None:
    from dataclasses import fields

    from edge_agent.alarms.model import Alarm, AlarmState, Severity

    alarm = Alarm(
        3, "r", "c", "health", Severity.INFO, AlarmState.ACTIVE_ACKNOWLEDGED, 1.0, None, ""
    )
    alarm.acked_at, alarm.acked_by, alarm.cleared_at = 2.0, "op", 4.0
    copy = alarm.snapshot()
    assert copy == alarm and copy is not alarm
    assert [getattr(copy, f.name) for f in fields(Alarm)] == [
        getattr(alarm, f.name) for f in fields(Alarm)
    ]
