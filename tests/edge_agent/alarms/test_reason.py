"""The reason the engine gives each alarm it raises (docs/alarms.md, "Why an alarm was
raised"): health rules name their conditions, the agent's own alarms say "internal",
only the raise builds one (acknowledge and clear carry it on), the parts are bounded to
what the batch contract takes, and the store keeps the reason across a restart (real
SQLite)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from edge_agent.alarms.model import AlarmEventKind, HealthCondition, Severity
from edge_agent.alarms.reason import AlarmReason, WindowSnapshot, bounded_parts
from edge_agent.store import Store, StoreConfig
from edgetwin_common.testing import FakeClock
from edgetwin_contracts.batch import MAX_REASON_PARTS, AlarmReasonRecord


class Channel:
    """What the channel pipeline gives the engine at a raise, counting the calls."""

    def __init__(self) -> None:
        self.calls = 0

    def score_parts(self) -> Mapping[str, float]:
        self.calls += 1
        return {"residual": 2.0, "spread": 0.5, "score": 4.0, "bad": math.nan}

    def window_snapshot(self) -> WindowSnapshot | None:
        return WindowSnapshot((1.0, 2.0), (10.0, 30.0), 2.0, (1.0, 2.0), (31.0, 33.0))


def test_a_level_rule_gives_value_limit_parts_and_window(rig_factory: Any) -> None:
    rig = rig_factory(
        [{"type": "value_below", "name": "low", "channel": "*", "set": 5, "clear": 6}]
    )
    channel = Channel()
    rig.engine.set_reason_source("flow", channel)
    rig.feed("flow", [9.0, 8.0, 4.0, 3.0, 7.0])
    assert channel.calls == 1  # once, at the raise; never per sample
    raised, cleared = rig.events
    reason = raised.alarm.reason
    assert reason is not None
    assert (reason.rule, reason.trigger, reason.top_channel) == ("low", "value", "flow")
    assert (reason.value, reason.limit, reason.direction) == (4.0, 5.0, "below")
    assert reason.parts == {"residual": 2.0, "spread": 0.5, "score": 4.0}  # NaN left out
    assert reason.window == channel.window_snapshot()
    assert cleared.kind is AlarmEventKind.CLEARED and cleared.alarm.reason == reason
    AlarmReasonRecord.model_validate(reason.to_dict())


def test_health_and_internal_alarms_have_reasons(rig_factory: Any) -> None:
    rig = rig_factory([{"type": "health", "name": "sick", "channel": "temp"}])
    rig.engine.on_health("temp", 1.0, frozenset({HealthCondition.STALE}))
    health = rig.events[-1].alarm.reason
    assert health is not None and health.trigger == "health"
    assert health.conditions == ("stale",) and health.limit is None and health.window is None
    internal = rig.engine.raise_internal("model-rollback", "*", 2.0, "rolled back", Severity.INFO)
    assert internal.reason == AlarmReason("model-rollback", "internal", "*")
    for event in rig.events:
        AlarmReasonRecord.model_validate(event.to_dict()["alarm"]["reason"])


def test_parts_are_bounded_to_what_the_contract_takes() -> None:
    many = {f"p{i}": float(i) for i in range(MAX_REASON_PARTS + 5)}
    many["x" * 65] = 1.0
    kept = bounded_parts({"x" * 65: 1.0, "inf": math.inf, **many})
    assert len(kept) == MAX_REASON_PARTS and "x" * 65 not in kept and "inf" not in kept


def test_the_store_keeps_the_reason_across_a_restart(rig_factory: Any, tmp_path: Path) -> None:
    rig = rig_factory([{"type": "value_above", "name": "hot", "channel": "temp", "set": 80}])
    rig.engine.set_reason_source("temp", Channel())
    rig.feed("temp", [70.0, 90.0])
    path = tmp_path / "s.db"
    with Store(path, StoreConfig(), FakeClock()) as store:
        for event in rig.events:
            store.add_alarm_event(event)
        store.flush()
    with Store(path, StoreConfig(), FakeClock()) as store:
        (alarm,) = store.open_alarms()
        (event,) = store.alarm_events()
    assert alarm.reason is not None and alarm.reason == rig.events[0].alarm.reason
    assert event.alarm.reason == alarm.reason
    again = rig_factory(
        [{"type": "value_above", "name": "hot", "channel": "temp", "set": 80}], restored=[alarm]
    )
    assert again.engine.active()[0].reason == alarm.reason


def test_a_level_written_inf_leaves_the_limit_out(rig_factory: Any) -> None:
    rig = rig_factory([{"type": "value_below", "name": "any", "channel": "x", "set": math.inf}])
    rig.feed("x", [1.0])
    reason = rig.events[0].alarm.reason
    assert reason is not None and reason.limit is None and reason.value == 1.0
    AlarmReasonRecord.model_validate(reason.to_dict())
