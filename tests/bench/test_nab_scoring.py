"""NAB scoring on hand-made files whose answers follow from the published formulas."""

from __future__ import annotations

import math

import pytest
from nab_scoring import (
    MAX_TP,
    PROFILES,
    label_series,
    optimize_threshold,
    probation_rows,
    scaled_sigmoid,
    score_corpus,
    score_series,
)

STANDARD, LOW_FP, LOW_FN = PROFILES


def stamps(n: int) -> list[str]:
    return [f"2024-01-01 {i // 60:02d}:{i % 60:02d}:00" for i in range(n)]


def one_window_file(rows: int = 100, first: int = 50, last: int = 59):  # type: ignore[no-untyped-def]
    ts = stamps(rows)
    return label_series("f.csv", ts, [[ts[first], ts[last]]])


def detections(rows: int, *at: int) -> list[float]:
    scores = [0.0] * rows
    for i in at:
        scores[i] = 1.0
    return scores


def test_sigmoid_anchor_points() -> None:
    assert scaled_sigmoid(-1.0) == pytest.approx(0.98661, abs=1e-5)
    assert scaled_sigmoid(-0.5) == pytest.approx(0.84828, abs=1e-5)
    assert scaled_sigmoid(0.0) == 0.0
    assert scaled_sigmoid(1.0) == pytest.approx(-0.98661, abs=1e-5)
    assert scaled_sigmoid(3.0) == -1.0


def test_probation_is_15_percent_capped_at_750() -> None:
    assert probation_rows(100) == 15
    assert probation_rows(1883) == 282
    assert probation_rows(5000) == 750
    assert probation_rows(22696) == 750


def test_detection_at_window_start_earns_a_tp() -> None:
    series = one_window_file()
    for profile in PROFILES:
        result = score_series(series, detections(100, 50), 0.5, profile)
        assert result.score == pytest.approx(profile.a_tp)
        assert (result.detected, result.missed, result.false_positives) == (1, 0, 0)
        assert result.delays == [0]


def test_detection_at_window_end_earns_little() -> None:
    series = one_window_file()
    result = score_series(series, detections(100, 59), 0.5, STANDARD)
    # Position -(59 - 59 + 1) / 10 = -0.1 of the width, scaled so the start is worth 1.
    expected = (2 / (1 + math.exp(-0.5)) - 1) / MAX_TP
    assert result.score == pytest.approx(expected)
    assert result.score == pytest.approx(0.24824, abs=1e-5)
    assert result.delays == [9]


def test_only_the_first_detection_in_a_window_counts() -> None:
    series = one_window_file()
    early = score_series(series, detections(100, 52), 0.5, STANDARD).score
    both = score_series(series, detections(100, 52, 58), 0.5, STANDARD)
    assert both.score == pytest.approx(early)
    assert both.detected == 1


def test_false_positive_right_after_a_window_costs_little_and_far_costs_a_fp() -> None:
    series = one_window_file(rows=200)
    near = score_series(series, detections(200, 60), 0.5, STANDARD)
    # One row past the end of a 10-row window: distance 1 / (10 - 1).
    expected_fp = 0.11 * (2 / (1 + math.exp(5 / 9)) - 1)
    assert near.score == pytest.approx(-1.0 + expected_fp)
    assert near.false_positives == 1 and near.missed == 1
    far = score_series(series, detections(200, 59 + 27), 0.5, STANDARD)  # 3 widths past
    assert far.score == pytest.approx(-1.0 - 0.11)
    low_fp = score_series(series, detections(200, 59 + 27), 0.5, LOW_FP)
    assert low_fp.score == pytest.approx(-1.0 - 0.22)
    low_fn = score_series(series, detections(200, 59 + 27), 0.5, LOW_FN)
    assert low_fn.score == pytest.approx(-2.0 - 0.11)


def test_file_without_anomalies() -> None:
    series = label_series("quiet.csv", stamps(100), [])
    assert score_series(series, detections(100), 0.5, STANDARD).score == 0.0
    result = score_series(series, detections(100, 40, 41), 0.5, STANDARD)
    assert result.score == pytest.approx(-0.22)  # no window before them: full A_FP each
    assert result.false_positives == 2


def test_probationary_period_is_not_scored() -> None:
    series = one_window_file()
    # Rows 0..14 are probationary: a detection there is neither a FP nor anything else.
    result = score_series(series, detections(100, 3, 14), 0.5, STANDARD)
    assert result.false_positives == 0
    assert result.score == pytest.approx(-1.0)
    assert score_series(series, detections(100, 15), 0.5, STANDARD).false_positives == 1


def test_window_inside_probation_is_not_scored() -> None:
    series = one_window_file(first=2, last=8)
    result = score_series(series, detections(100), 0.5, STANDARD)
    assert result.score == 0.0 and result.missed == 0


def test_optimized_threshold_and_normalization() -> None:
    series = one_window_file(rows=200)
    scores = [0.1] * 200
    scores[50] = 0.9  # the window's first row
    scores[120] = 0.7  # a false positive, below the true one
    scores[150] = 0.95  # a worse false positive, above it
    # Thresholds: 0.95 -> -1 - 0.11; 0.9 -> 1 - 0.11; 0.7 -> 1 - 0.22; nothing -> -1.
    sweep = optimize_threshold([(series, scores)], STANDARD)
    assert sweep.threshold == 0.9
    assert sweep.score == pytest.approx(1.0 - 0.11)
    result = score_corpus([(series, scores)], STANDARD)
    assert result.null == pytest.approx(-1.0)
    assert result.perfect == 1.0
    assert result.score == pytest.approx(100 * (0.89 + 1.0) / 2.0)
    fixed = score_corpus([(series, scores)], STANDARD, threshold=0.5)
    assert fixed.raw == pytest.approx(1.0 - 0.22)


def test_perfect_and_null_detectors_score_100_and_0() -> None:
    series = one_window_file(rows=300, first=100, last=129)
    other = label_series("g.csv", stamps(300), [])
    perfect = [(series, detections(300, 100)), (other, detections(300))]
    for profile in PROFILES:
        assert score_corpus(perfect, profile).score == pytest.approx(100.0)
        null = [(series, [0.5] * 300), (other, [0.5] * 300)]
        assert score_corpus(null, profile).score == pytest.approx(0.0)


def test_windows_must_be_rows_of_the_file() -> None:
    ts = stamps(10)
    with pytest.raises(ValueError, match="does not start and end on rows"):
        label_series("f.csv", ts, [[ts[2], "2030-01-01 00:00:00"]])
