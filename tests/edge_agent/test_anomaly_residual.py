"""The residual-based anomaly score (docs/anomaly-score.md)."""

from __future__ import annotations

import numpy as np
import pytest

from edge_agent.anomaly.residual import ResidualScorer, ScoreSettings


def test_scores_nothing_while_warming_up() -> None:
    scorer = ResidualScorer(ScoreSettings(warmup=10))
    scores = [scorer.score(1.0 + i, 0.0) for i in range(10)]
    assert scores == [0.0] * 10
    assert not ResidualScorer().is_warm
    assert scorer.is_warm


def test_ordinary_residuals_score_about_one() -> None:
    rng = np.random.default_rng(3)
    scorer = ResidualScorer()
    residuals = rng.normal(0.0, 0.5, 5000)
    scores = np.array([scorer.score(20.0 + r, 20.0) for r in residuals])[100:]
    assert 0.9 < scores.mean() < 1.1
    # The spread estimates mean |r| = 0.8 sigma.
    assert scorer.spread == pytest.approx(0.5 * np.sqrt(2 / np.pi), rel=0.15)


def test_a_spike_scores_high_and_does_not_mask_the_next_one() -> None:
    rng = np.random.default_rng(4)
    scorer = ResidualScorer()
    for r in rng.normal(0.0, 0.1, 500):
        scorer.score(50.0 + r, 50.0)
    first = scorer.score(55.0, 50.0)
    second = scorer.score(55.0, 50.0)
    assert first > 30
    # Capping the residual at clip * spread keeps the second spike almost as surprising.
    assert second > 0.8 * first


def test_a_lasting_change_is_absorbed() -> None:
    scorer = ResidualScorer(ScoreSettings(alpha=0.05))
    for _ in range(200):
        scorer.score(10.1, 10.0)
    scores = [scorer.score(12.0, 10.0) for _ in range(400)]
    assert scores[0] > 10
    assert scores[-1] < 1.5


def test_perfect_forecasts_on_a_large_reading_do_not_divide_by_zero() -> None:
    scorer = ResidualScorer(ScoreSettings(warmup=1))
    scorer.score(1000.0, 1000.0)
    # The relative floor (1e-4 * 1000 = 0.1) turns a 0.05 miss into a score of 0.5.
    assert scorer.score(1000.05, 1000.0) == pytest.approx(0.05 / (1e-4 * 1000.05))


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_input_is_refused(bad: float) -> None:
    with pytest.raises(ValueError, match="non-finite"):
        ResidualScorer().score(bad, 1.0)


@pytest.mark.parametrize(
    "kwargs",
    [{"alpha": 0.0}, {"alpha": 1.5}, {"warmup": 0}, {"clip": 0.0}, {"min_spread_abs": 0.0}],
)
def test_invalid_settings_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        ScoreSettings(**kwargs)  # type: ignore[arg-type]
