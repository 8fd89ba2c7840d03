"""The advisor's guards, one by one: disabled by default, bounds, rate of change,
hold-off, the safe value on model / sensor / source failure, the operator override, and
every change logged and raised as an info alarm."""

from __future__ import annotations

import logging
from itertools import islice
from typing import Any

import pytest
from pydantic import ValidationError

from edge_agent.alarms.engine import AlarmEngine
from edge_agent.alarms.model import AlarmEvent, AlarmEventKind, Severity
from edge_agent.simulator import SimulatorSettings, iter_frames, parse_fault
from edge_agent.simulator.command import LoadCommand
from edge_agent.simulator.observer import PumpObserver
from edge_agent.twin.advisor.advisor import CHANGE_ALARM, FALLBACK_ALARM, Advisor
from edge_agent.twin.advisor.closedloop import CommandOutput, pump_advisor_config
from edge_agent.twin.advisor.config import AdvisorConfig, ChannelLimit
from edge_agent.twin.advisor.errors import OverrideInvalid, PredictionFailed
from edge_agent.twin.advisor.guards import Guards, Verdict

LIMITS = {"bearing_temp": ChannelLimit(above=75.0, margin=2.0)}


def guards(**overrides: object) -> Guards:
    values: dict[str, object] = {
        "enabled": True,
        "output": "pump-load",
        "limits": LIMITS,
        "max_rate_per_min": 0.1,
        "hold_off_s": 30.0,
        "step_s": 10.0,
        "safe_value": 0.3,
    }
    values.update(overrides)
    return Guards(AdvisorConfig.model_validate(values))


def write(g: Guards, now: float, wanted: float | None, failure: str | None = None) -> float | None:
    decision = g.decide(now, wanted, failure)
    if decision.value is not None:
        g.commit(now, decision)
    return decision.value


def test_disabled_by_default_it_advises_and_never_writes() -> None:
    config = AdvisorConfig(limits=LIMITS)
    assert not config.enabled
    g = Guards(config)
    for wish, failure in ((0.5, None), (None, "model: broken")):
        decision = g.decide(100.0, wish, failure)
        assert decision.verdict is Verdict.DISABLED and decision.value is None
    g.set_override(0.4)
    assert g.decide(200.0, 0.6, None).verdict is Verdict.DISABLED
    with pytest.raises(ValidationError, match="needs output"):
        AdvisorConfig(limits=LIMITS, enabled=True)


def test_bounds_clip_the_wish_and_reject_an_override_outside_them() -> None:
    g = guards(minimum=0.2, maximum=0.8)
    assert write(g, 0.0, 1.5) == 0.8
    decision = g.decide(1000.0, -3.0, None)
    assert decision.wanted == 0.2
    with pytest.raises(OverrideInvalid, match=r"outside the bounds \[0.2, 0.8\]"):
        g.set_override(0.9)
    with pytest.raises(ValidationError, match="safe_value"):
        AdvisorConfig(limits=LIMITS, minimum=0.2, maximum=0.8, safe_value=0.1)


def test_rate_of_change_moves_at_most_the_rate_times_one_hold_off() -> None:
    g = guards()
    assert write(g, 0.0, 0.9) == 0.9
    decision = g.decide(30.0, 0.3, None)
    assert decision.verdict is Verdict.RATE_LIMITED
    assert decision.value == pytest.approx(0.9 - 0.1 * 30 / 60)
    g.commit(30.0, decision)
    # A long quiet spell does not allow a jump: the step is capped at one hold-off's worth.
    assert write(g, 3600.0, 0.3) == pytest.approx(0.85 - 0.05)
    assert write(g, 3630.0, 0.77) == pytest.approx(0.77)


def test_hold_off_after_each_change() -> None:
    g = guards(hold_off_s=60.0, max_rate_per_min=10.0)
    write(g, 0.0, 0.9)
    for now in (10.0, 30.0, 59.0):
        decision = g.decide(now, 0.5, None)
        assert decision.verdict is Verdict.HELD_OFF and decision.value is None
    assert write(g, 60.0, 0.5) == 0.5
    assert g.decide(61.0, 0.9, None).verdict is Verdict.HELD_OFF
    # Small wishes are not written at all (no chatter), whatever the hold-off.
    assert g.decide(500.0, 0.505, None).verdict is Verdict.UNCHANGED


def test_the_safe_value_on_failure_is_written_at_once() -> None:
    g = guards(hold_off_s=600.0)
    # Before its first write the advisor is not in control: a failure leaves the device.
    decision = g.decide(0.0, None, "model: warming up")
    assert decision.verdict is Verdict.UNCHANGED and decision.value is None
    assert decision.note == "not in control yet: model: warming up"
    write(g, 0.0, 0.9)
    decision = g.decide(1.0, None, "bearing_temp is stale (40 s without a reading)")
    assert decision.verdict is Verdict.SAFE and decision.value == 0.3  # past the hold-off
    g.commit(1.0, decision)
    assert g.decide(2.0, None, "still broken").verdict is Verdict.UNCHANGED


def test_an_operator_override_holds_the_output_and_its_release_resumes_under_the_guards() -> None:
    g = guards()
    write(g, 0.0, 0.9)
    g.set_override(0.4, by="ops")
    decision = g.decide(5.0, 0.95, None)
    assert decision.verdict is Verdict.OVERRIDE and decision.value == 0.4
    g.commit(5.0, decision)
    assert g.decide(100.0, None, "model: down").verdict is Verdict.UNCHANGED  # override wins
    g.set_override(None)
    assert g.override_by is None
    assert write(g, 100.0, 0.95) == pytest.approx(0.45)  # ramps up from the override


# -- the advisor with its guards, on the simulated pump and the real alarm engine ----------


class BreakableModel:
    """A real predictor (the pump observer) that can be broken on purpose: the model
    failure a corrupt bundle or an interpreter error would be."""

    def __init__(self, observer: PumpObserver) -> None:
        self.observer = observer
        self.is_broken = False

    def predict(self, controls: Any, step_s: float) -> Any:
        if self.is_broken:
            raise PredictionFailed("the interpreter failed")
        return self.observer.predict(controls, step_s)


def _advisor(**overrides: object) -> tuple[Advisor, CommandOutput, list[AlarmEvent]]:
    events: list[AlarmEvent] = []
    engine = AlarmEngine([], (1,), events.append, {})
    config = pump_advisor_config(**overrides)
    observer = PumpObserver(period_s=config.step_s, failure=PredictionFailed)
    output = CommandOutput(LoadCommand())
    advisor = Advisor(config, BreakableModel(observer), output, engine)
    advisor.observer = observer  # type: ignore[attr-defined]
    return advisor, output, events


def _feed(
    advisor: Advisor,
    frames: list,
    channels: tuple[str, ...] = ("bearing_temp", "ambient", "current"),
) -> None:
    observer: PumpObserver = advisor.observer  # type: ignore[attr-defined]
    for frame in frames:
        reading = frame.reported.as_dict() | {"load": frame.load}
        for channel in (*channels, "load"):
            observer.observe(channel, frame.t, reading[channel])
            advisor.observe(channel, frame.t)


def test_the_advisor_falls_back_on_model_sensor_and_source_failure(
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = SimulatorSettings(rate_hz=1.0, seed=3, faults=(parse_fault("overheat@60s,rate=2"),))
    frames = list(islice(iter_frames(settings), 900))
    advisor, output, events = _advisor(hold_off_s=30.0)
    model: BreakableModel = advisor.predictor  # type: ignore[assignment]
    caplog.set_level(logging.INFO, logger="edge_agent.twin.advisor.advisor")
    # Warming up (the observer has not seen two periods): not in control, nothing written.
    _feed(advisor, frames[:5])
    step = advisor.step(5.0)
    assert step.failure is not None and step.failure.startswith("model:")
    assert output.written == []
    _feed(advisor, frames[5:200])
    assert advisor.step(200.0).failure is None and output.written[-1] > 0.3
    # Model failure: the safe value at once.
    model.is_broken = True
    assert advisor.step(201.0).failure == "model: the interpreter failed"
    assert output.written[-1] == 0.3
    model.is_broken = False
    _feed(advisor, frames[200:300])
    step = advisor.step(300.0)
    assert step.failure is None and step.recommendation is not None
    assert output.written[-1] > 0.3
    # Sensor failure: bearing_temp stops arriving after t=299 s; the safe value is written.
    _feed(advisor, frames[300:331], channels=("ambient", "current"))
    step = advisor.step(331.0)
    assert step.failure == "bearing_temp is stale (32 s without a reading)"
    assert output.written[-1] == 0.3
    # Source failure.
    _feed(advisor, frames[331:600])
    advisor.step(600.0)
    assert output.written[-1] != 0.3
    advisor.source_state("pump", "device vanished")
    assert advisor.step(601.0).decision.verdict is Verdict.SAFE
    assert output.written[-1] == 0.3
    fallback = [e for e in events if e.alarm.rule == FALLBACK_ALARM]
    assert [e.kind for e in fallback] == [AlarmEventKind.RAISED, AlarmEventKind.CLEARED] * 2 + [
        AlarmEventKind.RAISED
    ]
    assert all(e.alarm.severity is Severity.WARNING for e in fallback)
    # Every change is logged and is an info alarm event.
    changes = [
        e for e in events if e.alarm.rule == CHANGE_ALARM and e.kind is AlarmEventKind.RAISED
    ]
    assert len(changes) == len(output.written) == advisor.counters["changes"]
    assert all(e.alarm.severity is Severity.INFO and e.alarm.channel == "load" for e in changes)
    assert "load 0.3 -> " in changes[2].alarm.message
    logged = [r.getMessage() for r in caplog.records if r.getMessage().startswith("advisor: load")]
    assert len(logged) == len(output.written)


def test_the_recommendation_keeps_the_predicted_bearing_inside_its_limit_with_its_margin() -> None:
    settings = SimulatorSettings(rate_hz=1.0, seed=4, faults=(parse_fault("overheat@0s,rate=0.8"),))
    frames = list(islice(iter_frames(settings), 600))
    advisor, _, _ = _advisor(enabled=False, output=None)
    _feed(advisor, frames)
    step = advisor.step(600.0)
    rec = step.recommendation
    assert rec is not None and rec.feasible and rec.tightest == "bearing_temp"
    assert rec.margin >= 2.0
    assert 0.15 < rec.value < 1.0  # derated, yet above the minimum
    assert step.decision.verdict is Verdict.DISABLED
    status = advisor.status()
    assert status["recommended"] == rec.value and status["applied"] is None


def test_when_no_value_keeps_the_limits_the_least_bad_one_is_shown_as_infeasible() -> None:
    # Lubrication lost fast and for good: within the horizon even minimum load overheats.
    settings = SimulatorSettings(rate_hz=1.0, seed=4, faults=(parse_fault("overheat@0s,rate=3"),))
    advisor, _, _ = _advisor(enabled=False, output=None)
    _feed(advisor, list(islice(iter_frames(settings), 600)))
    rec = advisor.step(600.0).recommendation
    assert rec is not None and not rec.feasible
    assert rec.value == pytest.approx(0.15) and rec.margin < 2.0
    assert advisor.counters["infeasible"] == 1
