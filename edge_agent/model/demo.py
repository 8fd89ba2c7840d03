"""`edge-agent model demo`: the shipped model alone on a bearing temperature with faults.

The model's part of the story without the daemon around it:
verify the shipped bundle, stream a plausible bearing-temperature series with a spike
and a gradual overheating fault through the int8 forecaster and the anomaly scorer,
report when the predicted crossing of the limit was first seen relative to the real
crossing, and measure per-sample inference latency.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from edge_agent.anomaly.residual import ResidualScorer
from edge_agent.model.bundle import LoadedModel, load_bundle
from edge_agent.model.shipped import DEFAULT_BUNDLE, default_public_key


@dataclass(frozen=True, slots=True)
class PumpScenario:
    """A bearing temperature sampled every ``period_s`` seconds (°C)."""

    samples: int = 3000
    period_s: float = 10.0
    spike_at: int = 900
    fault_at: int = 1800
    fault_rate_c_per_sample: float = 0.03
    limit_c: float = 85.0
    seed: int = 7


def pump_bearing_series(sc: PumpScenario) -> npt.NDArray[np.float64]:
    """Bearing temperature: ambient day cycle + load-driven heating + sensor noise,
    a one-sample spike at ``spike_at``, and from ``fault_at`` a lubrication fault that
    heats the bearing by ``fault_rate_c_per_sample`` per sample."""
    rng = np.random.default_rng(sc.seed)
    t = np.arange(sc.samples, dtype=np.float64)
    day = 86400.0 / sc.period_s
    ambient = 24.0 + 3.0 * np.sin(2 * math.pi * t / day)
    # Load follows a shift pattern with slow random variation; heating lags it (first order).
    load = 0.7 + 0.15 * np.sin(2 * math.pi * t / (day / 3)) + 0.02 * rng.standard_normal(t.size)
    heat = np.empty_like(t)
    level = 40.0 * load[0]
    for i, value in enumerate(load):
        level += (40.0 * value - level) / 60.0
        heat[i] = level
    temperature = ambient + heat + 0.08 * rng.standard_normal(t.size)
    temperature[sc.spike_at] += 9.0
    ramp = np.clip(t - sc.fault_at, 0.0, None) * sc.fault_rate_c_per_sample
    return np.asarray(temperature + ramp, dtype=np.float64)


@dataclass(slots=True)
class DemoReport:
    samples: int
    first_crossing: int | None
    first_warning: int | None
    spike_score: float
    max_score_before_fault: float
    p50_us: float
    p99_us: float


def run_demo(
    model: LoadedModel,
    scenario: PumpScenario,
    score_threshold: float = 8.0,
    echo: Callable[[str], None] = print,
) -> DemoReport:
    """Stream the scenario sample by sample through forecaster and scorer."""
    series = pump_bearing_series(scenario)
    forecaster = model.forecaster
    window_length = forecaster.window_length
    horizons = forecaster.horizons
    scorer = ResidualScorer()
    pending = np.full(scenario.samples + max(horizons) + 1, np.nan)
    latencies = np.empty(scenario.samples, dtype=np.int64)
    first_warning: int | None = None
    first_crossing: int | None = None
    spike_score = 0.0
    max_before_fault = 0.0
    n_lat = 0

    def spike_in_view(i: int) -> bool:
        # Forecasts made from windows holding the spike are off for a while: not "normal".
        return scenario.spike_at <= i <= scenario.spike_at + window_length + max(horizons)

    for i in range(window_length, scenario.samples):
        actual = float(series[i])
        if not math.isnan(pending[i]):
            score = scorer.score(actual, float(pending[i]))
            if i == scenario.spike_at:
                spike_score = score
                echo(f"  t={i:5d}  spike: reading {actual:6.2f} °C, anomaly score {score:6.1f}")
            elif i < scenario.fault_at and not spike_in_view(i):
                max_before_fault = max(max_before_fault, score)
        window = series[i - window_length + 1 : i + 1]
        start = time.perf_counter_ns()
        forecast = forecaster.forecast(window)
        latencies[n_lat] = time.perf_counter_ns() - start
        n_lat += 1
        pending[i + horizons[0]] = forecast[0]
        if first_warning is None and i >= scenario.fault_at and forecast.max() > scenario.limit_c:
            first_warning = i
            ahead = horizons[int(np.argmax(forecast > scenario.limit_c))]
            echo(
                f"  t={i:5d}  predicted crossing: forecast {forecast.max():6.2f} °C > "
                f"{scenario.limit_c} °C within {ahead} samples (now {actual:6.2f} °C)"
            )
        if first_crossing is None and actual > scenario.limit_c and i > scenario.spike_at:
            first_crossing = i
            echo(f"  t={i:5d}  reading crossed {scenario.limit_c} °C")
    lat = latencies[:n_lat] / 1000.0
    return DemoReport(
        samples=scenario.samples,
        first_crossing=first_crossing,
        first_warning=first_warning,
        spike_score=spike_score,
        max_score_before_fault=max_before_fault,
        p50_us=float(np.percentile(lat, 50)),
        p99_us=float(np.percentile(lat, 99)),
    )


def main(samples: int, backend: str, echo: Callable[[str], None] = print) -> int:
    start = time.perf_counter()
    model = load_bundle(DEFAULT_BUNDLE, default_public_key(), backend=backend)
    load_ms = (time.perf_counter() - start) * 1000
    m = model.manifest
    echo(
        f"model {m.model.name} {m.model.version}: verified (signature, sha256, "
        f"{len(m.golden.vectors)} golden vectors) and loaded on {model.backend} in "
        f"{load_ms:.1f} ms"
    )
    echo(
        f"  window {m.input.window_length} samples, horizons {m.output.horizons}, "
        f"int8 MAE +{m.metrics.int8_mae_increase * 100:.2f} % vs float32"
    )
    scenario = PumpScenario(samples=samples, spike_at=samples * 3 // 10, fault_at=samples * 6 // 10)
    echo(
        f"pump bearing temperature, {samples} samples every {scenario.period_s:g} s; "
        f"spike at t={scenario.spike_at}, overheating from t={scenario.fault_at}, "
        f"limit {scenario.limit_c} °C"
    )
    report = run_demo(model, scenario, echo=echo)
    echo("summary:")
    echo(
        f"  spike anomaly score {report.spike_score:.1f} (largest on normal data before "
        f"the fault: {report.max_score_before_fault:.1f})"
    )
    if report.first_warning is not None and report.first_crossing is not None:
        lead = report.first_crossing - report.first_warning
        echo(
            f"  overheating predicted {lead} samples ({lead * scenario.period_s / 60:.1f} min) "
            f"before the reading crossed {scenario.limit_c} °C"
        )
    elif report.first_crossing is None:
        echo(f"  the reading never crossed {scenario.limit_c} °C in this run")
    else:
        echo("  the crossing was not predicted before it happened")
    echo(f"  inference per sample: p50 {report.p50_us:.1f} µs, p99 {report.p99_us:.1f} µs")
    return 0
