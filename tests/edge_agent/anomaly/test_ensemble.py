"""The "ensemble" score method: its stages, causality through a whole replay, bounded
state and the parts of a score."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest

from edge_agent.anomaly.context import ContextNovelty
from edge_agent.anomaly.ensemble import PARTS, EnsembleDetector, EnsembleScoreConfig
from edge_agent.anomaly.seasonal import SeasonalBaseline
from edge_agent.config import LoadedConfig, parse_config
from edge_agent.pipeline.backtest import run_backtest

T0 = 1_700_000_000.0
DAY = 86_400.0
FAST = EnsembleScoreConfig(warmup=8, likelihood_warmup=50, hold_samples=5)


def daily(days: int, per_day: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Times and readings of a daily cycle with a little noise."""
    rng = np.random.default_rng(seed)
    i = np.arange(days * per_day)
    times = T0 + i * DAY / per_day
    return times, 50.0 + 20.0 * np.sin(2 * np.pi * i / per_day) + rng.normal(0, 0.5, i.size)


def run(detector: EnsembleDetector, times: np.ndarray, values: np.ndarray) -> list[float]:
    """Each reading's score, 0.0 while warming up (None). The forecast is the previous
    reading: a forecaster that follows any level."""
    forecasts = np.concatenate([[values[0]], values[:-1]])
    scores = []
    for t, v, f in zip(times, values, forecasts, strict=True):
        score = detector.score(float(t), float(v), float(f))
        scores.append(0.0 if score is None else score)
    return scores


def test_a_context_is_new_once_then_familiar() -> None:
    novelty = ContextNovelty(levels=4, length=2, table_bits=4)
    assert novelty.score(0.0) == 0.0  # no range yet
    assert novelty.score(1.0) == 1.0  # (0, 3): first seen
    assert novelty.score(0.0) == 1.0  # (3, 0)
    assert novelty.score(1.0) == 0.0  # (0, 3) again
    assert novelty.score(0.0) == 0.0
    assert novelty.score(0.5) == 1.0  # (0, 2): a shape never seen


def test_the_context_table_is_bounded_and_forgets_old_contexts() -> None:
    novelty = ContextNovelty(levels=64, length=2, table_bits=4)
    size = novelty.state_bytes
    novelty.score(0.0)
    for v in np.random.default_rng(3).uniform(0, 1, 2000):
        novelty.score(float(v))
    assert novelty.state_bytes == size == 16 * 8


def test_a_seasonal_slot_forecasts_its_own_mean_once_it_has_enough() -> None:
    baseline = SeasonalBaseline(DAY, slots=24, alpha=0.5, min_count=2)
    noon = baseline.slot(T0 - T0 % DAY + 12 * 3600 + 60)
    assert noon == 12
    assert math.isnan(baseline.forecast(noon))
    baseline.learn(noon, 10.0)
    assert math.isnan(baseline.forecast(noon))
    baseline.learn(noon, 20.0)
    assert baseline.forecast(noon) == pytest.approx(15.0)
    baseline.learn(noon, 35.0)  # weight 1/3 < ... no: max(1/3, 0.5) = 0.5
    assert baseline.forecast(noon) == pytest.approx(25.0)
    assert math.isnan(baseline.forecast(13))


def test_a_reading_usual_in_level_but_not_for_its_time_of_day_is_scored() -> None:
    per_day = 48
    times, values = daily(14, per_day, seed=5)
    # Day 12: the daily mean instead of the day's peak for four hours, as a holiday's
    # demand would be: nothing outside the range, an ordinary level for the channel.
    day12 = 12 * per_day
    values[day12 + 8 : day12 + 16] = 50.0 + np.random.default_rng(6).normal(0, 0.5, 8)
    settings = FAST.model_copy(update={"range_weight": 0.0, "context_weight": 0.0})
    detector = EnsembleDetector(settings)
    scores = run(detector, times, values)
    held_out = scores[: day12 + 8]
    assert max(scores[day12 + 8 : day12 + 16]) >= 3.0
    assert max(held_out[200:]) < max(scores[day12 + 8 : day12 + 16])

    without = EnsembleDetector(settings.model_copy(update={"seasonal_weight": 0.0}))
    blind = run(without, times, values)
    assert max(blind[day12 + 8 : day12 + 16]) < 3.0


def test_a_surprise_that_keeps_coming_back_becomes_a_habit() -> None:
    rng = np.random.default_rng(9)
    n = 1500
    times = T0 + 300.0 * np.arange(n)
    values = 50.0 + rng.normal(0, 0.5, n)
    for i in range(300, n, 150):
        values[i : i + 3] += 6.0  # the same burst every 150 samples
    # The residual part alone, against a perfect forecaster of the level.
    alone = {"range_weight": 0.0, "context_weight": 0.0, "seasonal_weight": 0.0}
    plain = FAST.model_copy(update={**alone, "seasonal_gate": False, "habit_weight": 0.0})
    habituated = plain.model_copy(update={"habit_weight": 3.0, "habit_half_life": 1000})

    def detections(settings: EnsembleScoreConfig) -> list[int]:
        detector = EnsembleDetector(settings)
        scores = [
            detector.score(float(t), float(v), 50.0) for t, v in zip(times, values, strict=True)
        ]
        return [i for i, s in enumerate(scores) if s is not None and s >= FAST.hold_level]

    every = detections(plain)
    assert len(every) >= 8 and every[0] == 302  # each burst, on its third reading
    habit = detections(habituated)
    assert habit[0] == 302  # the first one is news
    assert len(habit) <= 3  # then it is what this channel does


def test_parts_name_the_components_of_the_last_score() -> None:
    times, values = daily(4, 96, seed=1)
    values[300] += 40.0
    detector = EnsembleDetector(FAST.model_copy(update={"habit_weight": 0.0}))
    scores = run(detector, times[:301], values[:301])
    parts = detector.parts()
    assert tuple(parts) == PARTS
    assert scores[-1] == max(parts.values())
    assert parts["range"] > 3.0  # beyond every reading seen
    # With habituation the score may be lower than its largest part, never higher.
    habituated = EnsembleDetector(FAST)
    scores = run(habituated, times[:301], values[:301])
    assert 0.0 < scores[-1] <= max(habituated.parts().values())


def test_state_is_bounded_per_channel() -> None:
    detector = EnsembleDetector()
    before = detector.state_bytes
    times, values = daily(3, 288, seed=2)
    run(detector, times, values)
    assert detector.state_bytes == before <= 64 * 1024


def test_the_detector_alone_never_looks_ahead() -> None:
    times, values = daily(5, 96, seed=4)
    changed = values.copy()
    changed[300:] = 500.0
    first = run(EnsembleDetector(FAST), times, values)
    second = run(EnsembleDetector(FAST), times, changed)
    assert first[:300] == second[:300]
    assert first[300:] != second[300:]


def test_changing_later_rows_leaves_every_earlier_score_of_a_replay_identical(
    tmp_path: Path,
) -> None:
    """Through the whole replay: reader, cleaning, window, the int8 model on LiteRT and
    the ensemble detector, as `edge-agent replay` runs them for the NAB bench."""
    text = f"""
[agent]
data_dir = "{tmp_path / "data"}"

[channel_defaults.score]
method = "ensemble"
likelihood_warmup = 100
hold_samples = 20
"""
    loaded = LoadedConfig(tmp_path / "agent.toml", parse_config(text))
    times, values = daily(8, 96, seed=8)
    cut = 600
    changed = values.copy()
    changed[cut:] = 80 + np.random.default_rng(2).normal(0, 10, values.size - cut)
    results = []
    for name, series in (("a", values), ("b", changed)):
        path = tmp_path / f"{name}.csv"
        rows = [f"{t:.0f},{v:.4f}" for t, v in zip(times, series, strict=True)]
        path.write_text("timestamp,value\n" + "\n".join(rows) + "\n")
        out = tmp_path / f"{name}.nab.csv"
        run_backtest(loaded, path, None, nab_out=out)
        with out.open(newline="") as fh:
            results.append([row[2] for row in list(csv.reader(fh))[1:]])
    before, after = results
    assert len(before) == len(after) == values.size
    assert before[:cut] == after[:cut]
    assert max(float(s) for s in after[cut:]) >= 3.0  # the jump is detected


def test_bad_settings_and_readings_are_refused() -> None:
    with pytest.raises(ValueError, match="62 bits"):
        ContextNovelty(levels=64, length=12, table_bits=12)
    with pytest.raises(ValueError, match="period_s"):
        SeasonalBaseline(0.0, 24, 0.5, 1)
    with pytest.raises(ValueError, match="non-finite"):
        EnsembleDetector(FAST).score(T0, math.nan, 1.0)
