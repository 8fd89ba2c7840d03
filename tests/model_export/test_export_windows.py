"""Window building: shapes, target alignment and no leakage across the time split."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from edgetwin_contracts.manifest import Normalization
from edgetwin_contracts.normalization import normalize_windows
from model_export.dataset import WindowSet, WindowSpec, split_windows, windows_from_series

specs = st.builds(
    WindowSpec,
    window_length=st.integers(2, 40),
    horizons=st.lists(st.integers(1, 20), min_size=1, max_size=5, unique=True).map(
        lambda hs: tuple(sorted(hs))
    ),
    stride=st.integers(1, 7),
    holdout_fraction=st.floats(0.05, 0.6),
)


@given(spec=specs, n=st.integers(0, 400))
@settings(max_examples=200, deadline=None)
def test_windows_have_the_spec_shape_and_aligned_targets(spec: WindowSpec, n: int) -> None:
    series = np.arange(n, dtype=np.float64) * 3.0 + 1.0  # value identifies its index
    ws = windows_from_series(series, spec)
    expected = (n - spec.span) // spec.stride + 1 if n >= spec.span else 0
    assert ws.inputs.shape == (expected, spec.window_length)
    assert ws.targets.shape == (expected, len(spec.horizons))
    for i in range(len(ws)):
        start = i * spec.stride
        assert ws.inputs[i].tolist() == series[start : start + spec.window_length].tolist()
        last = start + spec.window_length - 1
        assert ws.targets[i].tolist() == [series[last + h] for h in spec.horizons]


@given(spec=specs, lengths=st.lists(st.integers(0, 300), min_size=1, max_size=4))
@settings(max_examples=200, deadline=None)
def test_no_window_spans_the_train_held_out_split(spec: WindowSpec, lengths: list[int]) -> None:
    # Series k holds the values k*1e6 + index, so every reading tells where it came from.
    series = [k * 1e6 + np.arange(n, dtype=np.float64) for k, n in enumerate(lengths)]
    train, held = split_windows(series, spec)
    for ws, in_train in ((train, True), (held, False)):
        seen = np.concatenate([ws.inputs.ravel(), ws.targets.ravel()])
        for k, n in enumerate(lengths):
            cut = spec.split_point(n)
            idx = seen[(seen >= k * 1e6) & (seen < (k + 1) * 1e6)] - k * 1e6
            if in_train:
                assert np.all(idx < cut)
            else:
                assert np.all(idx >= cut)
    assert len(held) == sum(
        len(windows_from_series(s[spec.split_point(len(s)) :], spec)) for s in series
    )


@given(n=st.integers(236, 600))
@settings(max_examples=30, deadline=None)
def test_min_rows_gives_both_parts_a_window(n: int) -> None:
    spec = WindowSpec()
    assert spec.min_rows() == 236
    train, held = split_windows([np.zeros(n)], spec)
    assert len(train) >= 1
    assert len(held) >= 1


def test_targets_share_their_window_normalisation() -> None:
    rng = np.random.default_rng(0)
    ws = WindowSet(rng.normal(50.0, 3.0, size=(20, 8)), rng.normal(50.0, 3.0, size=(20, 3)))
    norm = Normalization()
    z_in, z_target, std = ws.normalized(norm)
    expected_z, mean, expected_std = normalize_windows(ws.inputs, norm)
    np.testing.assert_allclose(z_in, expected_z)
    np.testing.assert_allclose(std, expected_std)
    np.testing.assert_allclose(z_target * std[:, None] + mean[:, None], ws.targets)


def test_forecastable_drops_jumps_after_a_flat_window() -> None:
    flat_then_step = np.concatenate([np.full(40, 80.0), np.full(10, 90.0)])
    ws = windows_from_series(flat_then_step, WindowSpec(window_length=32, horizons=(1, 4)))
    kept = ws.forecastable(Normalization())
    _, z_target, _ = kept.normalized(Normalization())
    assert len(kept) < len(ws)
    assert np.all(np.abs(z_target) <= 10.0)
