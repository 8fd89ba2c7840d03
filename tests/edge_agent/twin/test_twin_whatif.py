"""The shipped default twin on the real LiteRT interpreter: what-if against the pump
simulator's truth, strict scenarios, and the bundle checks a twin shares with the
per-channel forecaster."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from edge_agent.alarms.rules.value import ValueRule
from edge_agent.model.bundle import load_bundle
from edge_agent.model.shipped import DEFAULT_BUNDLE, default_public_key
from edge_agent.simulator.pump import PumpParams, SimulatorSettings, generate_series
from edge_agent.twin.errors import NotATwinBundle, ScenarioInvalid, TwinStateIncomplete
from edge_agent.twin.model import LoadedTwin, load_twin
from edge_agent.twin.scenario import Scenario, Segment
from edge_agent.twin.shipped import DEFAULT_TWIN_BUNDLE, default_twin_public_key
from edge_agent.twin.whatif import Limit, history_from_means, limits_from_rules, what_if
from edgetwin_contracts.errors import SignatureInvalid, TensorSpecMismatch

MINUTES = 40


@pytest.fixture(scope="module")
def twin() -> LoadedTwin:
    return load_twin(DEFAULT_TWIN_BUNDLE, default_twin_public_key())


@pytest.fixture(scope="module")
def run() -> tuple[np.ndarray, float, np.ndarray]:
    """1-minute means of the simulator (sensors then load), the true bearing temperature
    at the end, and the true ambient of the next hour (it does not depend on the load)."""
    frames = generate_series(SimulatorSettings(rate_hz=1.0, seed=5), (MINUTES + 60) * 60.0)
    rows = np.array([[*f.reported.as_dict().values(), f.load] for f in frames])
    means = rows.reshape(-1, 60, 5).mean(axis=1)
    ambient = np.array([f.truth.ambient for f in frames[MINUTES * 60 :]])
    return means[:MINUTES], frames[MINUTES * 60 - 1].truth.bearing_temp, ambient


def truth_under(load: float, bearing: float, ambient: np.ndarray) -> np.ndarray:
    """The simulator's physics at 1 Hz under a constant load, as 1-minute means."""
    p = PumpParams()
    alpha = 1.0 - math.exp(-1.0 / p.bearing_tau_s)
    out = []
    for amb in ambient:
        target = amb + p.bearing_rise_c + p.bearing_rise_per_load_c * load
        bearing += (target - bearing) * alpha
        vib = p.vibration_base_mm_s + p.vibration_per_load2_mm_s * load * load
        out.append([bearing, vib, p.current_no_load_a + p.current_per_load_a * load, amb])
    return np.array(out).reshape(-1, 60, 4).mean(axis=1)


def test_a_load_step_follows_the_simulators_truth(
    twin: LoadedTwin, run: tuple[np.ndarray, float, np.ndarray]
) -> None:
    means, bearing, ambient = run
    level = 0.95 if means[-1, 4] < 0.6 else 0.3
    history = means[-twin.spec.window_steps :]
    answer = what_if(twin, history, Scenario(controls={"load": [Segment(value=level, minutes=60)]}))
    truth = truth_under(level, bearing, ambient)
    paths = {c.channel: np.array(c.values) for c in answer.channels}
    assert answer.steps == 60 and answer.after_s[0] == 60.0 and answer.after_s[-1] == 3600.0
    assert answer.controls["load"] == [level] * 60
    # current and vibration follow the load at once; the bearing lags towards its new level
    assert abs(paths["current"][9] - truth[9, 2]) < 0.3
    assert abs(paths["vibration"][9] - truth[9, 1]) < 0.05
    assert abs(paths["bearing_temp"][29] - truth[29, 0]) < 1.5
    moved = abs(truth[59, 0] - history[-1, 0])
    assert moved > 5.0  # the step is big enough for the check above to mean something
    for c in answer.channels:  # the band widens from its first step and holds the path
        assert all(lo <= v <= hi for lo, v, hi in zip(c.lower, c.values, c.upper, strict=True))


def test_first_limit_crossing_names_the_rule_and_when(
    twin: LoadedTwin, run: tuple[np.ndarray, float, np.ndarray]
) -> None:
    history = run[0][-twin.spec.window_steps :]
    scenario = Scenario(
        controls={"load": [Segment(value=1.0, minutes=30), Segment(value=0.4, minutes=30)]}
    )
    free = what_if(twin, history, scenario)
    bearing = np.array(free.channels[twin.model.outputs.index("bearing_temp")].values)
    limit = float(bearing[:30].max()) - 0.5
    rules = [
        ValueRule(type="value_above", name="bearing-hot", channel="bearing_temp", set=limit),
        ValueRule(type="value_below", name="current-low", channel="current", set=-5.0),
    ]
    answer = what_if(twin, history, scenario, limits_from_rules(rules))
    assert answer.crossing is not None
    first = int(np.argmax(bearing >= limit)) + 1
    assert (answer.crossing.rule, answer.crossing.channel) == ("bearing-hot", "bearing_temp")
    assert answer.crossing.step == first and answer.crossing.after_s == 60.0 * first
    assert answer.crossing.value >= limit
    far = what_if(twin, history, scenario, [Limit("never", "*", 1e6, below=False)])
    assert far.crossing is None


def test_the_state_is_kept_between_what_ifs(twin: LoadedTwin, run: tuple) -> None:
    history = run[0][-twin.spec.window_steps :]
    scenario = Scenario(controls={"load": [Segment(value=0.5, minutes=45)]})
    first = what_if(twin, history, scenario)
    other = what_if(twin, history, Scenario(controls={"load": [Segment(value=0.9, minutes=7)]}))
    again = what_if(twin, history, scenario)
    assert first.channels == again.channels and other.steps == 7


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"controls": {"pressure": [{"value": 1.0, "minutes": 5}]}}, "controls.pressure"),
        ({"controls": {"load": [{"value": 0.5, "minutes": 2.5}]}}, "controls.load.0.minutes"),
        ({"controls": {"load": [{"value": 1.7, "minutes": 5}]}}, "controls.load.0.value"),
        ({"controls": {"load": [{"value": 0.5, "minutes": 600}]}}, "controls"),
        (
            {"controls": {"load": [{"value": 0.5, "minutes": 5}]}, "horizon_minutes": 90},
            "horizon_minutes",
        ),
    ],
)
def test_bad_scenarios_name_the_field(twin: LoadedTwin, run: tuple, body: dict, field: str) -> None:
    history = run[0][-twin.spec.window_steps :]
    with pytest.raises(ScenarioInvalid) as caught:
        what_if(twin, history, Scenario.model_validate(body), bounds={"load": (0.0, 1.0)})
    assert caught.value.field == field


def test_a_missing_channel_is_named(twin: LoadedTwin, run: tuple) -> None:
    means = {c: run[0][:, j].tolist() for j, c in enumerate(twin.model.channels)}
    assert history_from_means(twin, means).shape == (twin.spec.window_steps, 5)
    del means["vibration"]
    with pytest.raises(TwinStateIncomplete, match="vibration"):
        history_from_means(twin, means)
    bad = run[0][-twin.spec.window_steps :].copy()
    bad[3, 1] = np.nan
    with pytest.raises(TwinStateIncomplete, match="NaN"):
        twin.model.load_state(bad)


def test_each_loader_refuses_the_other_kind() -> None:
    with pytest.raises(TensorSpecMismatch, match="twin bundle"):
        load_bundle(DEFAULT_TWIN_BUNDLE, default_twin_public_key())
    with pytest.raises(NotATwinBundle):
        load_twin(DEFAULT_BUNDLE, default_public_key())


def test_a_tampered_twin_is_refused(tmp_path: Path) -> None:
    copy = tmp_path / "twin"
    shutil.copytree(DEFAULT_TWIN_BUNDLE, copy)
    manifest = copy / "manifest.json"
    manifest.write_text(manifest.read_text().replace('"horizon_steps": 60', '"horizon_steps": 61'))
    with pytest.raises(SignatureInvalid):
        load_twin(copy, default_twin_public_key())


def test_a_twin_that_does_not_load_leaves_a_reason(tmp_path: Path) -> None:
    from edge_agent.store.config import StoreConfig
    from edge_agent.store.sqlite import Store
    from edge_agent.twin.config import TwinConfig
    from edge_agent.twin.errors import TwinUnavailable
    from edge_agent.twin.service import TwinService
    from edge_agent.twin.shipped import DEFAULT_TWIN_PUBLIC_KEY

    store = Store(tmp_path / "store.db", StoreConfig())
    scenario = Scenario(controls={"load": [Segment(value=0.5, minutes=5)]})
    cases = [
        (TwinConfig(bundle=tmp_path / "nope", public_key=DEFAULT_TWIN_PUBLIC_KEY), "not loaded"),
        (TwinConfig(controls=["speed"], bounds={}), "[twin] controls are ['speed']"),
        # A key file that is not there: a reason, not a crash of the agent.
        (
            TwinConfig(bundle=tmp_path / "nope", public_key=tmp_path / "missing.pub"),
            "not loaded",
        ),
    ]
    for config, reason in cases:
        service = TwinService(config, lambda p: p, [], store, lambda: 0.0)
        assert service.info() is None and reason in service.unavailable
        with pytest.raises(TwinUnavailable, match="twin bundle"):
            service.what_if(scenario)
    store.close()


def test_a_state_at_the_edge_of_the_float_range_is_refused(twin: LoadedTwin) -> None:
    history = np.full((twin.spec.window_steps, 5), 1e308)
    with pytest.raises(TwinStateIncomplete, match="too far outside"):
        what_if(twin, history, Scenario(controls={"load": [Segment(value=0.5, minutes=5)]}))


def test_a_step_allocates_nothing(twin: LoadedTwin, run: tuple) -> None:
    """No array per step: the peak traced memory over many steps stays where it was
    (a numpy temporary of the input row alone would be 650 bytes)."""
    import tracemalloc

    model = twin.model
    model.load_state(run[0][-twin.spec.window_steps :])
    controls = np.array([0.3])
    for _ in range(3 * twin.spec.window_steps):  # through a fold of the buffer, warm
        model.step(controls)
    tracemalloc.start()
    try:
        base, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        for _ in range(5 * twin.spec.window_steps):
            model.step(controls)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak - base < 256


def test_a_stale_state_is_named_as_stale(tmp_path: Path) -> None:
    """Summaries that end hours ago: the answer says how long ago, not that periods are
    missing (both leave per-channel forecasts running)."""
    from edge_agent.store.config import StoreConfig
    from edge_agent.store.sqlite import Store
    from edge_agent.twin.config import TwinConfig
    from edge_agent.twin.errors import TwinStateIncomplete
    from edge_agent.twin.service import TwinService

    store = Store(tmp_path / "store.db", StoreConfig(summary_interval_s=60.0))
    t0 = 1_700_000_040.0
    levels = {"bearing_temp": 55.0, "vibration": 2.0, "current": 18.0, "ambient": 22.0}
    for i in range(20 * 60):
        for channel, level in {**levels, "load": 0.7}.items():
            store.add_sample(t0 + i, channel, level, None, None)
    store.close_open(t0 + 20 * 60)
    store.flush()
    service = TwinService(TwinConfig(), lambda p: p, [], store, lambda: t0 + 10 * 3600)
    scenario = Scenario(controls={"load": [Segment(value=0.5, minutes=5)]})
    with pytest.raises(TwinStateIncomplete, match=r"ended \d+ s ago"):
        service.what_if(scenario)
    store.close()
