"""Helpers shared by the bench scripts: percentiles and NAB discovery."""

from __future__ import annotations

import os
from pathlib import Path

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
