"""Resampler: interpolation onto the k·period grid, gaps and pass-through."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge_agent.cleaning.resample import Resampler


def collect(r: Resampler, readings: list[tuple[float, float]]) -> tuple[list[float], list[float]]:
    ts: list[float] = []
    vs: list[float] = []
    for t, v in readings:
        n = r.push(t, v)
        ts.extend(r.out_ts[:n])
        vs.extend(r.out_values[:n])
    return ts, vs


@given(
    st.lists(st.floats(0.01, 0.9), min_size=2, max_size=60),
    st.floats(-5.0, 5.0),
    st.floats(-100.0, 100.0),
    st.sampled_from([0.0, 1.7e9]),
)
def test_a_linear_ramp_is_reproduced_exactly_on_the_grid(
    steps: list[float], slope: float, offset: float, t0: float
) -> None:
    period = 0.5
    r = Resampler(period, max_gap_s=1.0)
    times = list(t0 + np.cumsum(steps))
    ts, vs = collect(r, [(t, offset + slope * (t - t0)) for t in times])
    expected_k = np.arange(np.ceil(times[0] / period), np.floor(times[-1] / period) + 1)
    assert np.allclose(ts, expected_k * period, rtol=0, atol=1e-6)
    assert np.allclose(vs, offset + slope * (np.array(ts) - t0), rtol=0, atol=1e-6)
    assert r.gaps == 0


def test_grid_points_are_emitted_once_and_in_order() -> None:
    r = Resampler(1.0, max_gap_s=5.0)
    ts, vs = collect(r, [(0.5, 0.0), (1.0, 1.0), (3.5, 6.0), (4.0, 7.0)])
    assert ts == [1.0, 2.0, 3.0, 4.0]
    assert vs == pytest.approx([1.0, 3.0, 5.0, 7.0])


def test_first_reading_on_the_grid_is_emitted_off_the_grid_is_not() -> None:
    on = Resampler(1.0)
    assert on.push(10.0, 3.0) == 1 and on.is_restart
    assert (on.out_ts[0], on.out_values[0]) == (10.0, 3.0)
    off = Resampler(1.0)
    assert off.push(10.2, 3.0) == 0 and off.is_restart


def test_a_gap_is_not_interpolated_and_restarts_the_window() -> None:
    r = Resampler(1.0, max_gap_s=3.0)
    collect(r, [(0.0, 0.0), (1.0, 1.0), (2.0, 2.0)])
    assert not r.is_restart
    assert r.push(10.5, 50.0) == 0  # nothing between 2 and 10.5; 10.5 is off the grid
    assert r.is_restart and r.gaps == 1
    assert r.take_restart() and not r.take_restart()
    assert r.push(11.5, 51.0) == 1
    assert not r.is_restart
    assert (r.out_ts[0], r.out_values[0]) == (11.0, pytest.approx(50.5))


def test_default_gap_is_ten_periods_and_bounds_the_output() -> None:
    r = Resampler(0.1)
    assert r.max_gap_s == pytest.approx(1.0)
    r.push(0.0, 0.0)
    n = r.push(0.95, 1.0)
    assert n == 9 and n <= r.capacity
    assert r.push(2.0, 1.0) == 1 and r.gaps == 1  # 1.05 s: a gap


def test_pass_through_emits_each_reading_and_still_detects_gaps() -> None:
    r = Resampler(None, max_gap_s=5.0)
    ts, vs = collect(r, [(0.3, 1.0), (1.7, 2.0), (2.0, 3.0)])
    assert (ts, vs) == ([0.3, 1.7, 2.0], [1.0, 2.0, 3.0])
    assert r.push(9.0, 4.0) == 1 and r.is_restart and r.gaps == 1
    unbounded = Resampler(None)
    unbounded.push(0.0, 0.0)
    unbounded.push(1e6, 0.0)
    assert unbounded.gaps == 0 and not unbounded.is_restart


def test_timestamps_must_increase() -> None:
    r = Resampler(1.0)
    r.push(1.0, 0.0)
    with pytest.raises(ValueError, match="increase"):
        r.push(1.0, 0.0)


@pytest.mark.parametrize(("period", "gap"), [(0.0, None), (-1.0, None), (1.0, 0.0)])
def test_bad_settings_are_refused(period: float, gap: float | None) -> None:
    with pytest.raises(ValueError):
        Resampler(period, gap)
