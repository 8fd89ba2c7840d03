"""The twin's data from synced summaries (the real pump simulator through the cloud's
ingest): what makes a device unusable is said, never raised; on SQLite and PostgreSQL."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import Engine

from cloud_sync.config import TWIN_EVALUATION_PERIODS, CloudConfig, parse_config
from cloud_sync.registry import add_device
from cloud_sync.training.twin_data import TwinData, TwinSkip, training_series, twin_data
from cloud_sync.training.twin_retrain import plan_twins
from cloud_sync.training.twin_running import resolve_running_twin, shipped_twin
from cloud_sync.training.twin_task import WhatIfScores, compare_twins, mark_steps
from edge_agent.simulator.pump import SimulatorSettings
from edgetwin_common.errors import ConfigInvalid
from edgetwin_demo.fleet_data import (
    CHANNELS,
    T0,
    SimulatedDevice,
    simulated_readings,
    summaries,
    sync,
    sync_simulated,
)
from tests.cloud_sync.training.conftest import insert_summaries, report_twin

HOURS = 3600.0


def _data(engine: Engine, device: str, min_periods: int = 400) -> TwinData | TwinSkip:
    base, period = shipped_twin()
    return twin_data(
        engine,
        device,
        CHANNELS,
        period,
        holdout_fraction=0.2,
        min_periods=min_periods,
        held_out_run=base.window_steps + base.horizon_steps,
        train_run=29,
    )


def _pump(name: str, hours: float, seed: int = 1, **kw: object) -> SimulatedDevice:
    settings = SimulatorSettings(rate_hz=1.0, seed=seed, duration_s=hours * HOURS)
    return SimulatedDevice(name, settings, **kw)  # type: ignore[arg-type]


def test_a_synced_pump_becomes_training_and_held_out_runs(engine: Engine) -> None:
    sync_simulated(engine, _pump("pump-a", 10))
    d = _data(engine, "pump-a")
    assert isinstance(d, TwinData), d
    assert d.periods == 600 and d.gaps == 0 and not d.notes
    assert (d.train_periods, d.held_out_periods) == (480, 120)
    # The period means are the readings' means: the load column is the drive's own load.
    times, values = simulated_readings(_pump("pump-a", 10))
    first = values[times < T0 + 60.0].mean(axis=0)
    assert np.allclose(d.train[0][0], first)
    series = training_series(d.train)
    assert series.shape == (4, 120, 5)


def test_what_is_wrong_with_a_device_is_named(engine: Engine) -> None:
    sync_simulated(engine, _pump("short", 4))
    sync_simulated(engine, _pump("no-load", 10, channels=CHANNELS[:4]))
    times, values = simulated_readings(_pump("coarse", 10))
    add_device(engine, "coarse")
    sync(engine, "coarse", summaries(times, values, CHANNELS, interval_s=300.0))
    reasons = {n: _data(engine, n) for n in ("short", "no-load", "coarse")}
    assert all(isinstance(r, TwinSkip) for r in reasons.values()), reasons
    assert "too little data: 240 complete 60 s periods" in reasons["short"].reason  # type: ignore[union-attr]
    assert reasons["no-load"].reason.startswith("no synced summaries of load")  # type: ignore[union-attr]
    assert "every 300 s, coarser than the twin's 60 s period" in reasons["coarse"].reason  # type: ignore[union-attr]


def test_gaps_and_non_finite_means_are_left_out_and_said(engine: Engine) -> None:
    """A NaN mean (PostgreSQL stores one; SQLite would store NULL, which the column
    refuses, so there an inf stands for it) and a gap split the runs."""
    add_device(engine, "bad")
    _, values = simulated_readings(_pump("bad", 10))
    means = values.reshape(600, 60, 5).mean(axis=1)
    bad = math.nan if engine.dialect.name == "postgresql" else math.inf
    vib = means[:, 1].copy()
    vib[100] = bad
    for j, channel in enumerate(CHANNELS):
        column = vib if channel == "vibration" else means[:, j]
        skip = frozenset(range(300, 305)) if channel == "current" else frozenset()
        insert_summaries(engine, "bad", channel, column, skip=skip)
    d = _data(engine, "bad")
    assert isinstance(d, TwinData), d
    assert d.periods == 600 - 1 - 5 and d.gaps == 2
    assert "vibration: 1 summaries with a non-finite mean left out" in d.notes[0]
    assert "2 gap(s)" in d.notes[1]
    assert all(np.isfinite(r).all() for r in [*d.train, *d.held_out])


def test_the_running_twin_is_the_shipped_default_until_the_device_reports_one(
    engine: Engine, tmp_path: Path
) -> None:
    add_device(engine, "pump-a")
    running = resolve_running_twin(engine, "pump-a", tmp_path)
    assert (running.name, running.version) == ("edgetwin-pump-twin", "1.0.0")
    assert "has not reported a twin" in running.note
    report_twin(engine, "pump-a", "edgetwin-pump-twin-pump-a", "1.0.3", "1" * 64)
    running = resolve_running_twin(engine, "pump-a", tmp_path)
    assert running.version == "1.0.0"
    assert "edgetwin-pump-twin-pump-a 1.0.3, whose bundle was not found here" in running.note


def _scores(normalized: list[float]) -> WhatIfScores:
    return WhatIfScores([1, 10, 30, 60], [{}] * 4, normalized, [], 10)


def test_a_candidate_worse_than_the_running_twin_is_not_promoted() -> None:
    running = _scores([0.01, 0.02, 0.04, 0.06])
    ok, reason = compare_twins(_scores([0.01, 0.03, 0.05, 0.06]), running, 0.05, 60.0)
    assert not ok
    assert reason.startswith("not promoted: what-if error 1.19x the running twin's")
    assert "10 min 1.50x" in reason and "margin of 5%" in reason
    ok, reason = compare_twins(_scores([0.008, 0.01, 0.02, 0.03]), running, 0.05, 60.0)
    assert ok and reason.startswith("promoted: what-if error 0.57x")
    # Better on average, worse at an hour: a what-if over an hour would pay for it.
    ok, reason = compare_twins(_scores([0.006, 0.012, 0.04, 0.063]), running, 0.05, 60.0)
    assert not ok and "0.81x" in reason, reason
    assert reason.endswith("but worse than it at 60 min"), reason
    ok, reason = compare_twins(_scores([math.nan] * 4), running, 0.05, 60.0)
    assert not ok and "not finite" in reason
    assert mark_steps(60.0, 60) == [1, 10, 30, 60]


def test_the_twin_config_says_what_is_wrong() -> None:
    config = parse_config("[training.twin]\nmargin = 0.1\n")
    assert config.training.twin.enabled and config.training.twin.margin == 0.1
    with pytest.raises(ConfigInvalid) as caught:
        parse_config("[training.twin]\nmin_periods = 100\n")
    (problem,) = caught.value.problems
    assert problem.path == "training.twin"
    assert f"fewer than the {TWIN_EVALUATION_PERIODS}" in problem.message
    assert "raise min_periods to at least 385" in problem.message
    with pytest.raises(ConfigInvalid) as caught:
        parse_config("[training.twin]\nmargin = 1.5\nepochs = 3\n")
    paths = {p.path for p in caught.value.problems}
    assert paths == {"training.twin.margin", "training.twin.epochs"}


def test_the_plan_skips_a_device_without_a_whole_training_series(
    engine: Engine, config: CloudConfig
) -> None:
    """A gap every 100 periods: whatever its amount of data, no 2-hour series to train
    on; the plan says so (and writes it), and never pretrains on an empty fleet."""
    add_device(engine, "gappy")
    _, values = simulated_readings(_pump("gappy", 16))
    means = values.reshape(960, 60, 5).mean(axis=1)
    for j, channel in enumerate(CHANNELS):
        insert_summaries(engine, "gappy", channel, means[:, j], skip=frozenset(range(0, 800, 100)))
    plan = plan_twins(engine, config, ["gappy"], rebuild_fleet=True, say=lambda _: None)
    assert plan.trainable == {} and plan.usable == {}
    (skip,) = plan.skipped
    assert skip.reason.startswith("no training stretch of 120 back-to-back complete periods")
    reports = config.training.reports_dir
    assert "no training stretch" in (reports / "gappy" / "twins" / "skipped.json").read_text()
