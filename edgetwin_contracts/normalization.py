"""Per-window standardisation, shared by training (vectorised) and the device (scalar).

For a window x of n readings: mean = sum(x) / n, std = sqrt(max(sum(x^2)/n - mean^2, 0))
(population std), then std_eff = max(std, min_std_abs, min_std_rel * |mean|) and
z = (x - mean) / std_eff. Forecasts come out in z units and go back as f * std_eff + mean.
The device's ``Forecaster.forecast`` computes exactly this for one window.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from edgetwin_contracts.manifest import Normalization

FloatArray = npt.NDArray[np.float64]


def window_stats(windows: npt.ArrayLike, norm: Normalization) -> tuple[FloatArray, FloatArray]:
    """Mean and effective std of each row of a (N, n) array of windows."""
    x = np.asarray(windows, dtype=np.float64)
    n = x.shape[-1]
    mean = x.sum(axis=-1) / n
    var = np.einsum("...i,...i->...", x, x) / n - mean * mean
    std = np.sqrt(np.maximum(var, 0.0))
    floor = np.maximum(norm.min_std_abs, norm.min_std_rel * np.abs(mean))
    return mean, np.maximum(std, floor)


def normalize_windows(
    windows: npt.ArrayLike, norm: Normalization
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Return (z, mean, std_eff) for a (N, n) array of windows; z has shape (N, n)."""
    x = np.asarray(windows, dtype=np.float64)
    mean, std = window_stats(x, norm)
    return (x - mean[..., None]) / std[..., None], mean, std
