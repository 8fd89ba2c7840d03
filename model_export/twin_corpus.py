"""Training series for the default twin: the simulated pump's physics, at the twin's
period, under load trajectories the operator could plan.

The pump simulator's own load is a slow cycle plus a wander, so a model trained only on
it never sees a load step. Here the same physics (``PumpParams``: current and vibration
follow the load at once, the bearing lags towards ambient + a rise in load with the
housing's time constant) is integrated under piecewise-constant loads with a wander on
top, and the per-period means are what a device aggregating 1 Hz readings would see
(the sensor noise shrinks by the square root of the readings in a period).

Vectorised over series with numpy; the same seed gives the same corpus.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from edge_agent.simulator.pump import PumpParams

FloatArray = npt.NDArray[np.float64]

SENSORS = ("bearing_temp", "vibration", "current", "ambient")
CONTROLS = ("load",)
CHANNELS = SENSORS + CONTROLS
LOAD_RANGE = (0.15, 1.0)


@dataclass(frozen=True, slots=True)
class CorpusSettings:
    series: int = 240
    periods: int = 720
    period_s: float = 60.0
    substeps: int = 12
    """Integration steps per period (5 s at a 1-minute period)."""
    readings_per_period: int = 60
    """Readings averaged into one period mean (1 Hz at a 1-minute period)."""
    seed: int = 11


def pump_corpus(settings: CorpusSettings, params: PumpParams | None = None) -> FloatArray:
    """(series, periods, channels) period means in ``CHANNELS`` order."""
    p = params or PumpParams()
    s = settings
    rng = np.random.default_rng(s.seed)
    n, steps = s.series, s.periods * s.substeps
    dt = s.period_s / s.substeps
    plan = _step_plan(rng, n, s.periods)
    load = np.repeat(plan, s.substeps, axis=1) + _wander(rng, n, steps, 0.03, 120.0, dt)
    np.clip(load, *LOAD_RANGE, out=load)
    t = np.arange(steps) * dt
    phase = rng.uniform(0, 86400, size=(n, 1))
    ambient = (
        rng.uniform(14.0, 32.0, size=(n, 1))
        + p.ambient_day_amplitude_c * np.sin(2 * math.pi * (t + phase) / 86400.0)
        + _wander(rng, n, steps, p.ambient_wander_c, p.ambient_wander_tau_s, dt)
    )
    target = ambient + p.bearing_rise_c + p.bearing_rise_per_load_c * load
    alpha = 1.0 - math.exp(-dt / p.bearing_tau_s)
    bearing = np.empty_like(target)
    b = target[:, 0] + rng.normal(0.0, 4.0, size=n)  # start off equilibrium too
    for k in range(steps):
        b = b + (target[:, k] - b) * alpha
        bearing[:, k] = b
    truth = np.stack(
        [
            bearing,
            p.vibration_base_mm_s + p.vibration_per_load2_mm_s * load * load,
            p.current_no_load_a + p.current_per_load_a * load,
            ambient,
            load,
        ],
        axis=-1,
    )
    means: FloatArray = truth.reshape(n, s.periods, s.substeps, len(CHANNELS)).mean(axis=2)
    root = math.sqrt(s.readings_per_period)
    means[..., 0] += rng.normal(0.0, p.noise_bearing_c / root, size=means.shape[:2])
    means[..., 1] *= 1.0 + rng.normal(0.0, p.noise_vibration_rel / root, size=means.shape[:2])
    means[..., 2] += rng.normal(0.0, p.noise_current_a / root, size=means.shape[:2])
    means[..., 3] += rng.normal(0.0, p.noise_ambient_c / root, size=means.shape[:2])
    return means


def _step_plan(rng: np.random.Generator, n: int, periods: int) -> FloatArray:
    """Piecewise-constant loads: a new level every 3 to 60 periods, now and then a ramp."""
    plan = np.empty((n, periods))
    for i in range(n):
        k = 0
        level = rng.uniform(*LOAD_RANGE)
        while k < periods:
            length = int(rng.integers(3, 61))
            new = rng.uniform(*LOAD_RANGE)
            if rng.random() < 0.2:  # a ramp over the segment
                plan[i, k : k + length] = np.linspace(level, new, length)[: periods - k]
            else:
                plan[i, k : k + length] = new
            level = new
            k += length
    return plan


def _wander(
    rng: np.random.Generator, n: int, steps: int, sigma: float, tau_s: float, dt: float
) -> FloatArray:
    """Ornstein-Uhlenbeck paths with stationary std ``sigma``, as the simulator's."""
    decay = math.exp(-dt / tau_s)
    kick = sigma * math.sqrt(1.0 - decay * decay)
    gauss = rng.normal(0.0, 1.0, size=(n, steps))
    out = np.empty((n, steps))
    x = rng.normal(0.0, sigma, size=n)
    for k in range(steps):
        x = x * decay + kick * gauss[:, k]
        out[:, k] = x
    return out
