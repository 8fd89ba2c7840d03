"""The forecaster's contract, against whichever backend EDGETWIN_BACKEND selects."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_agent.errors import WindowInvalid
from edge_agent.model.bundle import LoadedModel, load_bundle
from edge_agent.model.inference.quantization import quantize
from edge_agent.model.shipped import DEFAULT_BUNDLE, default_public_key
from edgetwin_contracts.normalization import normalize_windows


@pytest.fixture(scope="module")
def model() -> LoadedModel:
    return load_bundle(DEFAULT_BUNDLE, default_public_key())


def _window(model: LoadedModel, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = model.forecaster.window_length
    return 50.0 + np.cumsum(rng.standard_normal(n)) + np.sin(np.arange(n) / 3.0)


def test_input_is_quantized_exactly_as_the_vectorised_training_path_does(
    model: LoadedModel,
) -> None:
    """Device (scalar) and training (vectorised) normalisation must agree bit for bit in
    int8, otherwise the model sees different inputs in the field than in training."""
    f = model.forecaster
    for seed in range(20):
        window = _window(model, seed) * (10.0**seed % 7 + 1)
        f.forecast(window)
        z, _, _ = normalize_windows(window[None, :], model.manifest.input.normalization)
        expected = quantize(z[0], f.input_quant)
        np.testing.assert_array_equal(f._in_q[0], expected)


def test_forecast_is_scale_and_offset_equivariant(model: LoadedModel) -> None:
    """Per-window normalisation makes the model zero-shot on any scale: forecasting
    a * x + b gives a * forecast(x) + b, up to one output step where float rounding
    lands a quantization on the other side of a .5 boundary (while the std floor,
    min_std_rel * |mean|, stays below the window's own std)."""
    f = model.forecaster
    window = _window(model)
    base = f.forecast(window).copy()
    for a, b in ((1000.0, -3.0), (1e-3, 0.01), (3.7, 100.0), (2.0, -50.0)):
        scaled = a * window + b
        one_step = f.output_quant.scale * scaled.std()
        np.testing.assert_allclose(f.forecast(scaled), a * base + b, rtol=0, atol=1.01 * one_step)


def test_flat_window_forecasts_its_level(model: LoadedModel) -> None:
    f = model.forecaster
    out = f.forecast(np.full(f.window_length, 80.0))
    # The std floor (min_std_rel * |mean| = 0.08) bounds how far the forecast can move.
    assert np.all(np.abs(out - 80.0) < 1.0)


def test_output_buffer_is_reused_between_calls(model: LoadedModel) -> None:
    f = model.forecaster
    first = f.forecast(_window(model, 1))
    second = f.forecast(_window(model, 2))
    assert first is second


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_window_is_refused(model: LoadedModel, bad: float) -> None:
    window = _window(model)
    window[3] = bad
    with pytest.raises(WindowInvalid, match="NaN or inf"):
        model.forecaster.forecast(window)


def test_wrong_window_length_is_refused(model: LoadedModel) -> None:
    with pytest.raises(WindowInvalid, match="shape"):
        model.forecaster.forecast(np.zeros(model.forecaster.window_length + 1))


@settings(max_examples=60, deadline=None)
@given(
    values=st.lists(
        st.floats(min_value=-1e6, max_value=1e6, allow_nan=False), min_size=64, max_size=64
    )
)
def test_any_finite_window_gives_finite_forecasts_within_the_window_envelope(
    model: LoadedModel, values: list[float]
) -> None:
    f = model.forecaster
    window = np.asarray(values[: f.window_length], dtype=np.float64)
    out = f.forecast(window)
    assert np.all(np.isfinite(out))
    # The output tensor's range bounds a forecast to mean +- (a fixed number of) stds.
    lo, hi = f.output_quant.real_min, f.output_quant.real_max
    mean = window.mean()
    std = max(window.std(), 1e-6, 1e-3 * abs(mean))
    assert np.all(out >= mean + lo * std - 1e-6 * (abs(mean) + std))
    assert np.all(out <= mean + hi * std + 1e-6 * (abs(mean) + std))


def test_forecasts_match_the_interpreter_driven_through_its_public_api(
    model: LoadedModel,
) -> None:
    """The forecaster writes into and reads from the interpreter's tensors through views
    it keeps; driving a second interpreter of the same model with set_tensor / invoke /
    get_tensor on the reference quantization gives the same int8 outputs. The reference
    is the forecaster's own runtime: LiteRT and tflite-runtime kernels may round one
    output differently by one step."""
    from edge_agent.model.inference.backend import resolve
    from edge_agent.model.inference.quantization import dequantize

    f = model.forecaster
    _, interpreter = resolve(model.backend)
    reference = interpreter(
        model_content=(DEFAULT_BUNDLE / "model.tflite").read_bytes(), num_threads=1
    )
    reference.allocate_tensors()
    in_index = reference.get_input_details()[0]["index"]
    out_index = reference.get_output_details()[0]["index"]
    norm = model.manifest.input.normalization
    for seed in range(50):
        window = _window(model, seed) * (seed % 5 + 0.5) + seed * 100.0
        got = f.forecast(window).copy()
        z, mean, std = normalize_windows(window[None, :], norm)
        reference.set_tensor(in_index, quantize(z, f.input_quant))
        reference.invoke()
        expected_q = reference.get_tensor(out_index)[0]
        np.testing.assert_array_equal(f.last_output_q, expected_q)
        expected = dequantize(expected_q, f.output_quant) * std[0] + mean[0]
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-9 * std[0])


def test_windows_of_other_types_and_shapes(model: LoadedModel) -> None:
    f = model.forecaster
    window = _window(model)
    expected = f.forecast(window).copy()
    np.testing.assert_array_equal(f.forecast(window.tolist()), expected)
    single = window.astype(np.float32)
    widened = f.forecast(single.astype(np.float64)).copy()
    np.testing.assert_array_equal(f.forecast(single), widened)
    np.testing.assert_array_equal(f.forecast(window[::-1].copy()[::-1]), expected)
    for shape in ((1, f.window_length), (f.window_length, 1), ()):
        with pytest.raises(WindowInvalid, match="shape"):
            f.forecast(np.resize(window, shape))
    with pytest.raises(WindowInvalid, match="not an array of numbers"):
        f.forecast(["a"] * f.window_length)
