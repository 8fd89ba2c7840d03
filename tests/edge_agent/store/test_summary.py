"""SummaryAccumulator and Summary: numerically right against numpy, interval handling."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_agent.store.summary import Summary, SummaryAccumulator

values = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)
optional = st.one_of(st.none(), values)


def close(a: float | None, b: float, scale: float) -> bool:
    return a is not None and math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9 * scale)


def check_against_numpy(
    s: Summary, xs: list[float], forecasts: list[float | None], scores: list[float | None]
) -> None:
    x = np.array(xs)
    scale = max(1.0, float(np.max(np.abs(x))))
    assert s.count == len(xs)
    assert s.min == x.min() and s.max == x.max()
    assert s.last == xs[-1]
    assert close(s.mean, float(x.mean()), scale)
    assert close(s.std, float(x.std()), scale)
    errs = np.array([v - f for v, f in zip(xs, forecasts, strict=True) if f is not None])
    assert s.error_count == errs.size
    if errs.size:
        escale = max(1.0, float(np.max(np.abs(errs))))
        assert close(s.error_mean, float(errs.mean()), escale)
        assert close(s.error_mae, float(np.abs(errs).mean()), escale)
        assert close(s.error_rmse, float(np.sqrt((errs**2).mean())), escale)
        assert s.error_max_abs == float(np.abs(errs).max())
    else:
        assert s.error_mae is None and s.error_rmse is None and s.error_max_abs is None
    given_scores = [c for c in scores if c is not None]
    assert s.score_max == (max(given_scores) if given_scores else None)


samples = st.lists(st.tuples(values, optional, optional), min_size=1, max_size=200)


@settings(max_examples=150, deadline=None)
@given(samples)
def test_one_interval_matches_numpy(rows: list[tuple[float, float | None, float | None]]) -> None:
    acc = SummaryAccumulator("c", 60.0)
    for i, (v, f, sc) in enumerate(rows):
        assert acc.add(1200.0 + i * 0.1, v, f, sc) is None
    summary = acc.close_open(math.inf)
    assert summary is not None
    assert summary.start == 1200.0 and summary.end == 1260.0
    check_against_numpy(summary, [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows])
    assert acc.close_open(math.inf) is None  # emitted once


@settings(max_examples=100, deadline=None)
@given(samples, st.integers(min_value=1, max_value=199))
def test_merge_of_two_parts_matches_numpy(
    rows: list[tuple[float, float | None, float | None]], cut: int
) -> None:
    """An interval closed early (shutdown) and continued after a restart merges exactly."""
    cut = min(cut, len(rows))
    first, second = SummaryAccumulator("c", 60.0), SummaryAccumulator("c", 60.0)
    for i, (v, f, sc) in enumerate(rows):
        (first if i < cut else second).add(600.0 + i * 0.1, v, f, sc)
    a, b = first.close_open(math.inf), second.close_open(math.inf)
    assert a is not None
    merged = a if b is None else a.merge(b)
    check_against_numpy(merged, [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows])


def test_intervals_are_aligned_and_emitted_when_a_later_sample_arrives() -> None:
    acc = SummaryAccumulator("c", 10.0)
    assert acc.add(1003.0, 1.0, None, None) is None
    assert acc.add(1009.99, 3.0, None, None) is None
    closed = acc.add(1025.0, 5.0, None, None)  # skips the empty [1010, 1020)
    assert closed is not None
    assert (closed.start, closed.end, closed.count, closed.mean, closed.last) == (
        1000.0,
        1010.0,
        2,
        2.0,
        3.0,
    )
    assert closed.last_ts == 1009.99
    assert acc.close_open(1029.9) is None  # the open interval [1020, 1030) has not ended
    tail = acc.close_open(1030.0)
    assert tail is not None and tail.start == 1020.0 and tail.count == 1


def test_late_samples_are_counted_not_summarised() -> None:
    acc = SummaryAccumulator("c", 10.0)
    acc.add(1015.0, 1.0, None, None)
    acc.add(1004.0, 100.0, None, None)
    assert acc.late == 1
    summary = acc.close_open(math.inf)
    assert summary is not None and summary.count == 1 and summary.max == 1.0


def test_non_finite_forecast_and_score_are_ignored() -> None:
    acc = SummaryAccumulator("c", 10.0)
    acc.add(0.0, 1.0, math.nan, math.nan)
    acc.add(1.0, 2.0, math.inf, None)
    summary = acc.close_open(math.inf)
    assert summary is not None
    assert summary.error_count == 0 and summary.score_max is None


def test_to_dict_is_the_payload() -> None:
    acc = SummaryAccumulator("oil_pressure", 60.0)
    acc.add(120.5, 4.0, 3.5, 1.2)
    summary = acc.close_open(math.inf)
    assert summary is not None
    data = summary.to_dict()
    assert data["channel"] == "oil_pressure"
    assert (data["start"], data["end"], data["interval_s"]) == (120.0, 180.0, 60.0)
    assert data["error_mae"] == 0.5 and data["score_max"] == 1.2


def test_merge_rejects_another_interval() -> None:
    a = SummaryAccumulator("c", 10.0)
    a.add(0.0, 1.0, None, None)
    b = SummaryAccumulator("c", 10.0)
    b.add(10.0, 1.0, None, None)
    sa, sb = a.close_open(math.inf), b.close_open(math.inf)
    assert sa is not None and sb is not None
    with pytest.raises(ValueError):
        sa.merge(sb)


@pytest.mark.parametrize("interval", [0.0, -1.0, math.nan, math.inf])
def test_bad_interval(interval: float) -> None:
    with pytest.raises(ValueError):
        SummaryAccumulator("c", interval)
