"""Helpers shared by the bench scripts: percentiles, NAB discovery, and the per-sample
timing of a forecaster and a detector."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
NAB = Path(os.environ.get("EDGETWIN_NAB", REPO.parent / "shared" / "data" / "nab"))
KERAS_REFERENCE = REPO / "model_export" / "models" / "default_forecaster.keras"
"""Kept in step with model_export.default_model.KERAS_REFERENCE (no TF import here)."""


def percentiles_us(samples_ns: np.ndarray) -> tuple[float, float]:
    """p50 and p99 in microseconds."""
    p50, p99 = np.percentile(samples_ns, [50, 99]) / 1000.0
    return float(p50), float(p99)


def nab_series() -> list[Path]:
    folder = NAB / "data" / "realKnownCause"
    if not folder.is_dir():
        raise SystemExit(f"NAB data not found at {folder}; set EDGETWIN_NAB to its folder")
    return sorted(folder.glob("*.csv"))


WARMUP_SAMPLES = 100
"""Samples left out of the timing (first calls, caches)."""


def time_detector(forecaster: Any, detector: Any) -> tuple[np.ndarray, np.ndarray]:
    """Forecast and score each sample of NAB machine_temperature, timed apart, as the
    channel pipeline runs them; returns (forecast ns, score ns) per sample after the
    first WARMUP_SAMPLES."""
    from edge_agent.pipeline.window import SampleWindow
    from edge_agent.sources.replay import ReplaySource, ReplaySourceConfig

    source = ReplaySource(
        ReplaySourceConfig(type="replay", name="cost", path=nab_series()[3], speed=0)
    )
    readings = [(r.ts, r.value) for r in source.iter_readings()]
    window = SampleWindow(forecaster.window_length)
    forecast_ns = np.zeros(len(readings), dtype=np.int64)
    score_ns = np.zeros(len(readings), dtype=np.int64)
    clock = time.perf_counter_ns
    pending = float("nan")
    n = 0
    for ts, value in readings:
        if pending == pending:
            t0 = clock()
            detector.score(ts, value, pending)
            score_ns[n] = clock() - t0
        window.push(value)
        if window.is_full:
            t0 = clock()
            pending = float(forecaster.forecast(window.view())[0])
            forecast_ns[n] = clock() - t0
            n += 1
    return forecast_ns[WARMUP_SAMPLES:n], score_ns[WARMUP_SAMPLES:n]
