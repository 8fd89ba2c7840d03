"""The twin as the advisor's predictor: real LiteRT on the shipped default twin, a real
SQLite store fed by the simulator, the simulator's own roll-forward as the truth, and
the real guards when the twin cannot predict."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from edge_agent.config import load_config
from edge_agent.daemon.agent import Agent
from edge_agent.reading import Reading
from edge_agent.simulator.command import LoadCommand
from edge_agent.simulator.faults import Fault, FaultKind
from edge_agent.simulator.pump import Frame, SimulatorSettings, generate_series, iter_frames
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
from tests.edge_agent.agent_harness import config_for

STEP_S = 10.0
WARM_S = 1500.0  # 16 one-minute periods of state, and then some


@dataclass
class Fed:
    """A simulated pump fed into a real store, a twin service and its predictor."""

    settings: SimulatorSettings
    store: Store
    service: TwinService
    predictors: list[TwinPredictor]
    frames: Iterator[Frame]
    last: Frame | None = None
    next_flush: float = 10.0
    to_store: bool = True

    @property
    def predictor(self) -> TwinPredictor:
        return self.predictors[0]

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
                for predictor in self.predictors:
                    predictor.observe(channel, t, value)
            self.last = frame
            if t >= t_end:
                break
        assert self.last is not None
        return self.last


def _fed(path: Path, settings: SimulatorSettings, residual_periods: tuple[int, ...]) -> Fed:
    store = Store(path, StoreConfig(), clock=lambda: 0.0)
    service = TwinService(TwinConfig(), lambda p: p, [], store, lambda: 0.0)
    assert service.twin is not None, service.unavailable
    predictors = [TwinPredictor(service, "load", m) for m in residual_periods]
    frames = iter_frames(settings, command=LoadCommand())
    return Fed(settings, store, service, predictors, frames)


@pytest.fixture
def fed(tmp_path: Path) -> Iterator[Fed]:
    fed = _fed(tmp_path / "store.db", SimulatorSettings(rate_hz=1.0, seed=7), (0,))
    yield fed
    fed.store.close()


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


def test_the_twin_alone_predicts_a_lost_lubrication_away_its_residuals_do_not(
    tmp_path: Path,
) -> None:
    """The twin learnt a healthy pump: under a heat it never saw, rolled alone it has the
    bearing relax to the healthy temperature, far below the truth; with its recent
    one-period residuals carried forward (twin_residual_periods) it follows the truth."""
    lubrication = Fault(FaultKind.OVERHEAT, 600.0, 3000.0, rate=1.0)
    settings = SimulatorSettings(rate_hz=1.0, seed=11, faults=(lubrication,))
    fed = _fed(tmp_path / "store.db", settings, (0, 10))
    frame = fed.run_until(1800.0)
    controls = plan(pump_advisor_config(), frame.load, 60)
    raw, corrected = (p.predict(controls, STEP_S)["bearing_temp"] for p in fed.predictors)
    assert fed.predictors[1].offset is not None
    for row in (0, 30):  # down to the minimum, down to 0.45
        limits = [float(controls[row, s // int(STEP_S)]) for s in range(600)]
        truth = roll_forward(settings, frame.state, limits).reported["bearing_temp"][9::10]
        assert raw[row][-1] < truth[-1] - 10.0
        assert np.max(np.abs(corrected[row] - truth)) < 1.0
    fed.store.close()


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
    # The store stopped being fed: the state is named stale, with its age.
    assert re.search(r"ended \d+ s ago", step.failure), step.failure
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


def test_the_agent_advises_from_its_own_twin_and_store(tmp_path: Path) -> None:
    """The agent's wiring: [twin] and [advisor] predictor = "twin" give an advisor whose
    predictor reads the agent's own twin and store; fed 25 minutes of the simulated
    pump (readings into the store as the pipeline would, flushed every 10 s), it
    recommends with no failure."""
    body = (
        '[[sources]]\ntype = "replay"\nname = "pump"\npath = "unused.csv"\n'
        '[twin]\n[advisor]\npredictor = "twin"\n'
        "[advisor.limits.bearing_temp]\nabove = 75.0\nmargin = 2.0\n"
    )
    agent = Agent(config_for(tmp_path, body), sources=[])
    try:
        assert agent.advisor is not None and agent.whatif is not None
        predictor = agent.advisor.observer
        assert isinstance(predictor, TwinPredictor) and predictor.service is agent.whatif
        assert predictor.residual_periods == 10
        t0 = 1_700_000_000.0
        for frame in generate_series(SimulatorSettings(rate_hz=1.0, seed=4), 1500.0):
            ts = t0 + frame.t
            if frame.index % 10 == 0:
                agent.store.flush()
            values = frame.reported.as_dict() | {"load": frame.load}
            for channel, value in values.items():
                agent.store.add_sample(ts, channel, value, None, None)
                agent.advisor.on_reading(Reading(ts, channel, value))
        status = agent.advisor.status()
        assert status["failure"] is None, status["failure"]
        assert status["recommended"] is not None and status["feasible"] is True
        assert status["margins"]["bearing_temp"] > 2.0
    finally:
        agent.store.close()
