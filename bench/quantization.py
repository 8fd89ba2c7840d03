"""Quantization cost of the shipped default model on real sensor data (NAB).

For every series in NAB's realKnownCause set and every window position, forecast with
the float32 Keras reference of the default model and with the int8 bundle through the
device's Forecaster; report MAE in the series' own units (horizon 1, and the mean over
all horizons), the int8 increase relative to float32, and a naive last-value forecast
for scale. Target (issue 2): int8 MAE within 3 % (relative) of float32 MAE.
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
from _common import KERAS_REFERENCE, nab_series

from edge_agent.model.bundle import load_bundle
from edge_agent.model.shipped import DEFAULT_BUNDLE, default_public_key
from edgetwin_contracts.normalization import normalize_windows


def load_values(path: os.PathLike[str]) -> np.ndarray:
    return np.loadtxt(path, delimiter=",", skiprows=1, usecols=1, dtype=np.float64)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--stride", type=int, default=1, help="window positions step")
    args = parser.parse_args()

    import keras

    keras_model = keras.models.load_model(KERAS_REFERENCE)
    loaded = load_bundle(DEFAULT_BUNDLE, default_public_key())
    f = loaded.forecaster
    norm = loaded.manifest.input.normalization
    w, horizons = f.window_length, np.asarray(f.horizons)
    print(
        f"default model {loaded.manifest.model.version}: window {w}, horizons {horizons.tolist()}"
    )
    columns = ("windows", "naive h1", "f32 h1", "int8 h1", "Δ h1", "Δ all h")
    widths = (8, 10, 10, 10, 7, 8)
    cells = " ".join(f"{c:>{w}s}" for c, w in zip(columns, widths, strict=True))
    print(f"{'series':40s} {cells}")
    increases_h1, increases_all = [], []
    for path in nab_series():
        values = load_values(path)
        starts = np.arange(0, values.size - w - horizons[-1] + 1, args.stride)
        idx = starts[:, None] + np.arange(w)
        windows = values[idx]
        targets = values[starts[:, None] + w - 1 + horizons]
        z, mean, std = normalize_windows(windows, norm)
        f32 = keras_model.predict(z.astype(np.float32), batch_size=8192, verbose=0)
        f32 = f32 * std[:, None] + mean[:, None]
        int8 = np.empty_like(f32)
        for i in range(windows.shape[0]):
            int8[i] = f.forecast(windows[i])
        err_f32 = np.abs(f32 - targets)
        err_int8 = np.abs(int8 - targets)
        naive_h1 = float(np.mean(np.abs(windows[:, -1] - targets[:, 0])))
        inc_h1 = err_int8[:, 0].mean() / err_f32[:, 0].mean() - 1
        inc_all = err_int8.mean() / err_f32.mean() - 1
        increases_h1.append(inc_h1)
        increases_all.append(inc_all)
        print(
            f"{path.stem:40s} {windows.shape[0]:8d} {naive_h1:10.4g} {err_f32[:, 0].mean():10.4g} "
            f"{err_int8[:, 0].mean():10.4g} {inc_h1 * 100:+6.2f}% {inc_all * 100:+7.2f}%"
        )
    worst = max(max(increases_h1), max(increases_all))
    print(
        f"mean int8 MAE increase: h1 {np.mean(increases_h1) * 100:+.2f} %, all horizons "
        f"{np.mean(increases_all) * 100:+.2f} %; worst series {worst * 100:+.2f} %"
    )
    verdict = "meets" if worst <= 0.03 else "MISSES"
    print(f"{verdict} the target: int8 MAE within 3 % of float32 MAE on every series")


if __name__ == "__main__":
    main()
