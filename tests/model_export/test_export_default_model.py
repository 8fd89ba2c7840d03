"""The shipped default bundle: signed by the shipped key, generic, small, quantizes well."""

from __future__ import annotations

import numpy as np

from edge_agent.model.bundle import load_bundle
from edge_agent.model.shipped import DEFAULT_BUNDLE, default_public_key
from edgetwin_contracts.manifest import MODEL_FILE


def test_default_bundle_loads_with_the_shipped_key() -> None:
    loaded = load_bundle(DEFAULT_BUNDLE, default_public_key())
    m = loaded.manifest
    assert m.model.name == "edgetwin-generic-forecaster"
    assert m.input.channels is None  # serves any channel
    assert m.input.sample_period_s is None
    assert m.input.window_length == 32
    assert m.output.horizons == [1, 2, 4, 8, 16]
    assert m.metrics.int8_mae_increase <= 0.03
    assert m.metrics.float32.mae < m.metrics.int8.mae * 1.5


def test_default_model_is_small() -> None:
    assert (DEFAULT_BUNDLE / MODEL_FILE).stat().st_size < 64 * 1024


def test_default_model_is_scale_free() -> None:
    # The same shape at two scales gives the same forecast, scaled: windows are z-scored.
    forecaster = load_bundle(DEFAULT_BUNDLE, default_public_key()).forecaster
    t = np.arange(32, dtype=np.float64)
    shape = np.sin(t / 5.0) + 0.01 * t
    small = forecaster.forecast(20.0 + 0.5 * shape).copy()
    large = forecaster.forecast(5e4 + 1e3 * shape).copy()
    np.testing.assert_allclose((small - 20.0) / 0.5, (large - 5e4) / 1e3, rtol=1e-6, atol=1e-6)
