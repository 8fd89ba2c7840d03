"""`edge-agent model bench`: per-sample inference latency of a bundle on this device.

The whole per-sample cost the pipeline pays (normalise, quantize, invoke, dequantize)
through the same ``Forecaster`` the agent uses, single-threaded, after a warm-up. It
needs nothing but the device install (no TensorFlow), so it runs on the board itself.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_agent.model.bundle import load_bundle
from edgetwin_contracts.signing import load_public_key

WARMUP = 500


@dataclass(frozen=True, slots=True)
class BenchResult:
    backend: str
    samples: int
    p50_us: float
    p99_us: float
    mean_us: float

    @property
    def per_s(self) -> float:
        """Forecasts per second on one core at the mean latency."""
        return 1e6 / self.mean_us if self.mean_us > 0 else 0.0


def bench_forecaster(
    bundle: Path, public_key: Path, samples: int, backend: str = "auto"
) -> BenchResult:
    """Time ``samples`` single-window forecasts (samples >= 1). Raises what
    ``load_bundle`` raises for a bundle that does not verify."""
    model = load_bundle(bundle, load_public_key(public_key), backend=backend, num_threads=1)
    f = model.forecaster
    rng = np.random.default_rng(0)
    # A random walk around a plausible temperature: realistic scales for the quantizer.
    windows = 60.0 + np.cumsum(rng.standard_normal((256, f.window_length)), axis=1)
    for i in range(WARMUP):
        f.forecast(windows[i & 255])
    times = np.empty(samples, dtype=np.int64)
    clock = time.perf_counter_ns
    for i in range(samples):
        w = windows[i & 255]
        t0 = clock()
        f.forecast(w)
        times[i] = clock() - t0
    p50, p99 = np.percentile(times, [50, 99]) / 1000.0
    return BenchResult(
        str(model.backend), samples, float(p50), float(p99), float(times.mean()) / 1000.0
    )


def main(bundle: Path, public_key: Path, samples: int, backend: str) -> int:
    import platform

    r = bench_forecaster(bundle, public_key, samples, backend)
    print(
        f"inference on {platform.machine()} ({r.backend}), {r.samples} forecasts, 1 thread: "
        f"p50 {r.p50_us:.1f} µs, p99 {r.p99_us:.1f} µs, mean {r.mean_us:.1f} µs "
        f"({r.per_s:,.0f} forecasts/s)"
    )
    return 0
