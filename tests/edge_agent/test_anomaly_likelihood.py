"""The likelihood detector (docs/anomaly-quality.md): causal, one detection per event."""

from __future__ import annotations

import math

import numpy as np
import pytest

from edge_agent.anomaly.likelihood import (
    AnomalyDetector,
    AnomalyLikelihood,
    LikelihoodScoreConfig,
    tail_score,
)
from edge_agent.anomaly.novelty import RangeNovelty

SETTINGS = LikelihoodScoreConfig(likelihood_warmup=100, hold_samples=20)


def noisy(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Readings around a slowly wandering level, and one-step forecasts that miss them
    by Gaussian noise."""
    rng = np.random.default_rng(seed)
    level = 50.0 + 2.0 * np.sin(np.arange(n) / 50.0)
    values = level + rng.normal(0, 0.5, n)
    return values, level + rng.normal(0, 0.1, n)


def run(values: np.ndarray, forecasts: np.ndarray) -> list[float | None]:
    detector = AnomalyDetector(SETTINGS)
    return [detector.score(0.0, float(v), float(f)) for v, f in zip(values, forecasts, strict=True)]


def test_tail_score_is_minus_log10_of_the_normal_tail() -> None:
    assert tail_score(0.0) == pytest.approx(math.log10(2))
    assert tail_score(3.090232) == pytest.approx(3.0, abs=1e-4)  # p = 0.001
    assert tail_score(60.0) == 300.0  # capped, never an error


def test_no_score_until_every_stage_is_warm() -> None:
    values, f1 = noisy(400, 1)
    values[40] += 50.0  # a huge miss while warming up: still no score
    detector = AnomalyDetector(SETTINGS)
    assert detector.warmup_steps == 16 + 100
    scores, warm = [], []
    for v, f in zip(values, f1, strict=True):
        scores.append(detector.score(0.0, float(v), float(f)))
        warm.append(detector.is_warm)
    # The residual scorer's 16 residuals, then the likelihood's 100 surprises.
    assert scores[:116] == [None] * 116
    assert warm.index(True) == 115  # warm once the 116th residual has been learned
    assert all(s is not None and s >= 0.0 for s in scores[116:])


def test_ordinary_noise_rarely_scores_high() -> None:
    values, f1 = noisy(5000, 2)
    scores = np.array(run(values, f1)[200:], dtype=float)
    assert np.mean(scores >= SETTINGS.hold_level) < 0.002


def test_one_event_is_one_detection() -> None:
    values, f1 = noisy(1000, 3)
    values[600:640] += 25.0  # a fault lasting 40 samples
    scores = run(values, f1)
    high = [i for i, s in enumerate(scores[590:], 590) if s is not None and s >= 3.0]
    assert high and 600 <= high[0] <= 602
    # The hold swallows the rest of the event: the next detection (if any) comes only
    # after hold_samples quiet samples.
    assert all(i > high[0] + SETTINGS.hold_samples for i in high[1:])
    assert scores[high[0] + 1 : high[0] + 1 + SETTINGS.hold_samples] == [0.0] * 20


def test_a_bigger_event_breaks_through_the_hold() -> None:
    values, f1 = noisy(1000, 3)
    values[600] += 8.0  # a detection, which starts a hold...
    values[605] += 60.0  # ...and a much bigger glitch inside it
    values[610] += 8.0  # a smaller one inside the new hold: swallowed
    scores = run(values, f1)
    assert scores[600] is not None and scores[600] >= SETTINGS.hold_level
    assert scores[605] is not None and scores[605] > scores[600]
    assert scores[606:626] == [0.0] * 20


def test_range_novelty_scores_readings_beyond_every_level_seen() -> None:
    novelty = RangeNovelty(weight=4.0)
    assert novelty.score(20.0) == 0.0  # no range yet
    assert novelty.score(30.0) == 0.0  # still none before this reading widens it
    assert novelty.score(25.0) == 0.0  # inside [20, 30]
    # 0.75 % of the width (10) above the highest reading: 4 per percent.
    assert novelty.score(30.075) == pytest.approx(3.0)
    assert novelty.score(30.075) == 0.0  # now part of the range
    assert novelty.score(18.0) == pytest.approx(4.0 * 100 * 2.0 / 10.075)


def test_likelihood_reacts_to_a_lasting_rise_in_surprise() -> None:
    likelihood = AnomalyLikelihood(short_window=6, alpha=0.001, warmup=100)
    rng = np.random.default_rng(5)
    for s in np.abs(rng.normal(0, 1, 1000)):
        likelihood.score(float(np.log1p(s)))
    scores = [likelihood.score(math.log1p(6.0)) for _ in range(6)]
    assert scores == sorted(scores) and scores[-1] > 5.0


def test_no_look_ahead_changing_the_future_leaves_past_scores() -> None:
    values, f1 = noisy(1500, 6)
    before = run(values, f1)
    rng = np.random.default_rng(7)
    cut = 900
    values[cut:] = rng.normal(0, 100, 1500 - cut)
    f1[cut:] = rng.normal(0, 100, 1500 - cut)
    after = run(values, f1)
    assert after[:cut] == before[:cut]
    assert after[cut:] != before[cut:]


def test_non_finite_input_raises() -> None:
    detector = AnomalyDetector(SETTINGS)
    with pytest.raises(ValueError, match="non-finite"):
        detector.score(0.0, math.nan, 1.0)
