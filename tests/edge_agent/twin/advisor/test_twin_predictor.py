"""The twin as the advisor's predictor: real LiteRT on the shipped default twin, a real
SQLite store fed by the simulator, the simulator's own roll-forward as the truth, and
the real guards when the twin cannot predict."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from edge_agent.config import load_config
from edge_agent.simulator.command import LoadCommand
from edge_agent.simulator.pump import Frame, SimulatorSettings, iter_frames
from edge_agent.simulator.rollforward import roll_forward
from edge_agent.store import Store, StoreConfig
from edge_agent.twin.advisor.advisor import Advisor, plan
from edge_agent.twin.advisor.closedloop import CommandOutput, pump_advisor_config
from edge_agent.twin.advisor.errors import PredictionFailed
from edge_agent.twin.advisor.guards import Verdict
from edge_agent.twin.advisor.service import advisor_service
from edge_agent.twin.advisor.twin_predictor import TwinPredictor
from edge_agent.twin.batch import TwinBatch
from edge_agent.twin.config import TwinConfig
from edge_agent.twin.service import TwinService
from edge_agent.twin.shipped import DEFAULT_TWIN_PUBLIC_KEY
from edgetwin_common.errors import ConfigInvalid

STEP_S = 10.0
WARM_S = 1500.0  # 16 one-minute periods of state, and then some


@dataclass
class Fed:
    """A simulated pump fed into a real store, a twin service and its predictor."""

    settings: SimulatorSettings
    store: Store
    service: TwinService
    predictor: TwinPredictor
    frames: Iterator[Frame]
    last: Frame | None = None
    next_flush: float = 10.0
    to_store: bool = True

    def run_until(self, t_end: float) -> Frame:
        for frame in self.frames:
            t = frame.t
            if self.to_store and t >= self.next_flush:
                self.store.flush()
                self.next_flush += 10.0
            reading = frame.reported.as_dict()
            reading["load"] = frame.load
            for channel, value in reading.items():
                if self.to_store:
                    self.store.add_sample(t, channel, value, None, None)
                self.predictor.observe(channel, t, value)
            self.last = frame
            if t >= t_end:
                break
        assert self.last is not None
        return self.last


@pytest.fixture
def fed(tmp_path: Path) -> Iterator[Fed]:
    settings = SimulatorSettings(rate_hz=1.0, seed=7)
    now = {"t": 0.0}
    store = Store(tmp_path / "store.db", StoreConfig(), clock=lambda: now["t"])
    service = TwinService(TwinConfig(), lambda p: p, [], store, lambda: now["t"])
    assert service.twin is not None, service.unavailable
    predictor = TwinPredictor(service, "load")
    frames = iter_frames(settings, command=LoadCommand())
    yield Fed(settings, store, service, predictor, frames)
    store.close()


def test_the_batch_rolls_every_plan_as_the_model_does_one_by_one(fed: Fed) -> None:
    twin = fed.service.twin
    assert twin is not None
    model = twin.model
    rng = np.random.default_rng(3)
    centers = np.array([60.0, 1.9, 17.0, 22.0, 0.7])
    history = centers + rng.normal(0.0, 0.3, (model.window_steps, 5))
    plans = rng.uniform(0.15, 1.0, (24, 11, 1))
    batch = TwinBatch(model, 24, 12)
    paths = batch.roll(history, plans)
    model.load_state(history)
    for i in range(24):
        assert np.array_equal(paths[i], model.roll(plans[i])), i


def test_a_load_limit_step_follows_the_simulators_truth(fed: Fed) -> None:
    """From a warmed-up pump, the advisor's own plans (ramps from the load now at its
    rate, then held): for limits that bring the load down, the predicted bearing stays
    near the simulator's own noise-free future over the whole 10-minute horizon; for a
    limit above the demand (the pump gives less than the limit) the prediction, which
    takes the limit as the load, is on the safe side."""
    config = pump_advisor_config()
    steps = 60
    for t_now in (WARM_S, 2400.0, 3300.0):
        frame = fed.run_until(t_now)
        controls = plan(config, frame.load, steps)
        predicted = fed.predictor.predict(controls, STEP_S)
        assert set(predicted) == {"bearing_temp", "vibration", "current", "ambient"}
        for row in (5, 15, 30, controls.shape[0] - 1):
            limits = [float(controls[row, s // int(STEP_S)]) for s in range(steps * int(STEP_S))]
            truth = roll_forward(fed.settings, frame.state, limits)
            true_bearing = truth.reported["bearing_temp"][int(STEP_S) - 1 :: int(STEP_S)]
            error = predicted["bearing_temp"][row] - true_bearing
            if controls[row, -1] < frame.load:
                assert np.max(np.abs(error)) < 0.6, (t_now, row)
                assert np.mean(np.abs(error)) < 0.4, (t_now, row)
            else:  # up to the full limit: the worst case is at or above the truth
                assert np.min(error) > -0.5, (t_now, row)


def test_no_state_and_a_stale_state_fail_with_the_reason(fed: Fed) -> None:
    controls = np.full((3, 60), 0.5)
    with pytest.raises(PredictionFailed, match="no reading yet"):
        fed.predictor.predict(controls, STEP_S)
    fed.run_until(300.0)
    with pytest.raises(PredictionFailed, match=r"the last 16 periods"):
        fed.predictor.predict(controls, STEP_S)
    fed.run_until(WARM_S)
    fed.predictor.predict(controls, STEP_S)
    fed.to_store = False  # the store stops getting summaries; readings still arrive
    fed.run_until(WARM_S + 300.0)
    # No newer period in the store: stale (the latest ended > 3 periods ago), which the
    # store's window reports as the last 16 periods missing.
    with pytest.raises(PredictionFailed, match=r"ended \d+ s ago|the last 16 periods"):
        fed.predictor.predict(controls, STEP_S)


def test_a_twin_failure_writes_the_safe_value_through_the_guards(fed: Fed) -> None:
    config = pump_advisor_config(predictor="twin")
    output = CommandOutput(LoadCommand())
    advisor = Advisor(config, fed.predictor, output)
    for t in np.arange(STEP_S, WARM_S + STEP_S, STEP_S):
        fed.run_until(float(t))
        for channel in ("bearing_temp", "vibration", "current", "ambient", "load"):
            advisor.observe(channel, float(t))
        step = advisor.step(float(t))
    assert step.failure is None and step.recommendation is not None
    assert advisor.guards.applied is not None and advisor.guards.applied > config.safe
    fed.to_store = False
    t = WARM_S
    while step.failure is None:
        t += STEP_S
        fed.run_until(t)
        for channel in ("bearing_temp", "vibration", "current", "ambient", "load"):
            advisor.observe(channel, t)
        step = advisor.step(t)
    assert step.failure is not None and step.failure.startswith("model: ")
    assert "the twin needs the last 16 periods" in step.failure
    assert step.decision.verdict is Verdict.SAFE
    assert output.written[-1] == config.safe
    assert advisor.guards.applied == config.safe


def test_a_twin_that_did_not_load_is_the_reason(tmp_path: Path, fed: Fed) -> None:
    broken = TwinService(
        TwinConfig(bundle=tmp_path / "nope", public_key=DEFAULT_TWIN_PUBLIC_KEY),
        lambda p: p,
        [],
        fed.store,
        lambda: 0.0,
    )
    predictor = TwinPredictor(broken, "load")
    predictor.observe("load", 1.0, 0.5)
    with pytest.raises(PredictionFailed, match="the twin is unavailable: twin bundle"):
        predictor.predict(np.full((2, 6), 0.5), STEP_S)


def test_the_service_builds_the_twin_predictor(fed: Fed) -> None:
    config = pump_advisor_config(predictor="twin", enabled=False, output=None)
    service = advisor_service(config, {}, None, fed.service)
    assert service is not None and isinstance(service.observer, TwinPredictor)
    with pytest.raises(ValueError, match=r"advisor.control 'flow' is not one of"):
        TwinPredictor(fed.service, "flow")
    assert advisor_service(None, {}, None, fed.service) is None


def test_predictor_twin_without_a_twin_section_is_named(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    path.write_text('[advisor]\npredictor = "twin"\n[advisor.limits.bearing_temp]\nabove = 75\n')
    with pytest.raises(ConfigInvalid) as caught:
        load_config(path)
    assert [str(p) for p in caught.value.problems] == [
        'advisor.predictor: "twin" needs a [twin] section (the model it rolls forward): '
        'add [twin] or set advisor.predictor = "pump-physics"'
    ]
    path.write_text(
        '[twin]\n[advisor]\npredictor = "twin"\n[advisor.limits.bearing_temp]\nabove = 75\n'
    )
    assert load_config(path).config.advisor is not None
