"""A seeded generator of sensor-like series, the corpus the default model learns from.

Each series is built in a unit-free "signal" space from randomly chosen components,
then placed at a random physical scale and offset, so that the model (which only ever
sees per-window z-scores) learns shapes, not magnitudes. The exact component
probabilities and parameter ranges are the class attributes of ``CorpusRecipe`` and are
listed in docs/default-model.md; change them there too.

Determinism: series i of ``generate_corpus(seed, n)`` depends only on (seed, i, length),
so a larger corpus with the same seed starts with the same series.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class CorpusRecipe:
    """Probabilities (p_*) and ranges (uniform unless noted) of each component.

    Amplitudes are in signal units before the final scaling; periods in samples.
    """

    samples_per_day: tuple[int, ...] = (24, 48, 96, 144, 288, 1440)
    p_daily: float = 0.6
    daily_amplitude: tuple[float, float] = (0.3, 2.0)
    daily_second_harmonic: tuple[float, float] = (0.0, 0.5)
    p_daily_square: float = 0.25
    """Share of daily cycles squashed into on/off duty cycles (tanh(k·s), k in 2..8)."""
    p_weekly: float = 0.3
    weekly_amplitude: tuple[float, float] = (0.2, 1.5)
    p_machine_cycle: float = 0.35
    machine_period: tuple[float, float] = (4.0, 128.0)
    machine_amplitude: tuple[float, float] = (0.2, 1.5)
    p_trend: float = 0.5
    trend_total: tuple[float, float] = (-4.0, 4.0)
    p_drift: float = 0.4
    drift_peak_to_peak: tuple[float, float] = (0.5, 3.0)
    p_random_walk: float = 0.3
    random_walk_step: tuple[float, float] = (0.02, 0.3)
    p_level_steps: float = 0.3
    level_step_count: tuple[int, int] = (1, 4)
    level_step_sigma: float = 1.5
    p_white: float = 0.7
    white_sigma: tuple[float, float] = (0.02, 0.6)
    p_ar1: float = 0.5
    ar1_phi: tuple[float, float] = (0.5, 0.98)
    ar1_sigma: tuple[float, float] = (0.05, 1.0)
    """Stationary std of the AR(1) noise."""
    p_heavy_tail: float = 0.25
    heavy_tail_df: tuple[float, float] = (1.5, 4.0)
    heavy_tail_sigma: tuple[float, float] = (0.02, 0.3)
    noise_gain_log10: tuple[float, float] = (-1.5, 0.3)
    """All noise is multiplied by 10**U(...): from near-clean to noise-dominated series."""
    p_volatility_regime: float = 0.15
    volatility_factor: tuple[float, float] = (2.0, 6.0)
    p_spikes: float = 0.3
    spikes_per_sample: float = 1 / 250
    spike_size: tuple[float, float] = (2.0, 8.0)
    """Spike height in multiples of the series' std, either sign, 1–3 samples wide."""
    p_stuck: float = 0.1
    stuck_count: tuple[int, int] = (1, 3)
    stuck_length: tuple[int, int] = (8, 128)
    p_saturation: float = 0.15
    saturation_quantile: tuple[float, float] = (0.8, 0.98)
    p_quantization: float = 0.25
    quantization_step: tuple[float, float] = (0.02, 0.5)
    """Sensor resolution as a multiple of the final series' std."""


DEFAULT_RECIPE = CorpusRecipe()

# (family, probability); each draws offset and std in physical units, see _place.
_FAMILIES = (("temperature", 0.3), ("current", 0.15), ("pressure", 0.15), ("generic", 0.4))


def generate_corpus(
    seed: int, n_series: int, length: int = 1024, recipe: CorpusRecipe = DEFAULT_RECIPE
) -> list[FloatArray]:
    """``n_series`` float64 series of ``length`` samples each (all finite).

    Raises ValueError when n_series < 0 or length < 16.
    """
    return list(iter_corpus(seed, n_series, length, recipe))


def iter_corpus(
    seed: int, n_series: int, length: int = 1024, recipe: CorpusRecipe = DEFAULT_RECIPE
) -> Iterator[FloatArray]:
    """Like ``generate_corpus``, one series at a time (for progress bars)."""
    if n_series < 0:
        raise ValueError(f"n_series must be >= 0, got {n_series}")
    if length < 16:
        raise ValueError(f"length must be >= 16, got {length}")
    for child in np.random.SeedSequence(seed).spawn(n_series):
        yield generate_series(np.random.default_rng(child), length, recipe)


def generate_series(
    rng: np.random.Generator, length: int, recipe: CorpusRecipe = DEFAULT_RECIPE
) -> FloatArray:
    """One sensor-like series; every draw comes from ``rng``."""
    r = recipe
    t = np.arange(length, dtype=np.float64)
    spd = float(rng.choice(r.samples_per_day))
    signal = np.zeros(length)

    if rng.random() < r.p_daily:
        phase, phase2 = rng.uniform(0, 2 * math.pi, size=2)
        shape = np.sin(2 * math.pi * t / spd + phase)
        shape += rng.uniform(*r.daily_second_harmonic) * np.sin(4 * math.pi * t / spd + phase2)
        if rng.random() < r.p_daily_square:
            k = rng.uniform(2.0, 8.0)
            shape = np.tanh(k * shape) / math.tanh(k)
        signal += rng.uniform(*r.daily_amplitude) * shape
    if rng.random() < r.p_weekly:
        phase = rng.uniform(0, 2 * math.pi)
        signal += rng.uniform(*r.weekly_amplitude) * np.sin(2 * math.pi * t / (7 * spd) + phase)
    if rng.random() < r.p_machine_cycle:
        period = rng.uniform(*r.machine_period)
        cycle = (t / period + rng.random()) % 1.0
        # half sine, half sawtooth: rotating machines vs fill/empty processes
        shape = np.sin(2 * math.pi * cycle) if rng.random() < 0.5 else 2 * cycle - 1
        signal += rng.uniform(*r.machine_amplitude) * shape
    if rng.random() < r.p_trend:
        signal += rng.uniform(*r.trend_total) * t / length
    if rng.random() < r.p_drift:
        drift = np.cumsum(np.cumsum(rng.normal(size=length)))
        signal += _to_peak_to_peak(drift, rng.uniform(*r.drift_peak_to_peak))
    if rng.random() < r.p_random_walk:
        signal += np.cumsum(rng.normal(0.0, rng.uniform(*r.random_walk_step), size=length))
    if rng.random() < r.p_level_steps:
        for _ in range(int(rng.integers(r.level_step_count[0], r.level_step_count[1] + 1))):
            at = int(rng.integers(1, length))
            signal[at:] += rng.normal(0.0, r.level_step_sigma)

    signal += _noise(rng, length, r)

    if rng.random() < r.p_spikes:
        spread = max(float(np.std(signal)), 1e-3)
        for _ in range(1 + int(rng.poisson(length * r.spikes_per_sample))):
            at = int(rng.integers(0, length))
            width = int(rng.integers(1, 4))
            sign = 1.0 if rng.random() < 0.5 else -1.0
            signal[at : at + width] += sign * rng.uniform(*r.spike_size) * spread
    if rng.random() < r.p_stuck:
        for _ in range(int(rng.integers(r.stuck_count[0], r.stuck_count[1] + 1))):
            at = int(rng.integers(0, length))
            signal[at : at + int(rng.integers(*r.stuck_length))] = signal[at]
    if rng.random() < r.p_saturation:
        top = np.quantile(signal, rng.uniform(*r.saturation_quantile))
        bottom = np.quantile(signal, 1.0 - rng.uniform(*r.saturation_quantile))
        signal = np.minimum(signal, top)
        if rng.random() < 0.5:
            signal = np.maximum(signal, bottom)

    series = _place(rng, signal)
    if rng.random() < r.p_quantization:
        step = rng.uniform(*r.quantization_step) * max(float(np.std(series)), 1e-12)
        series = np.round(series / step) * step
    return series


def _noise(rng: np.random.Generator, length: int, r: CorpusRecipe) -> FloatArray:
    noise = np.zeros(length)
    has_any = False
    if rng.random() < r.p_white:
        noise += rng.normal(0.0, rng.uniform(*r.white_sigma), size=length)
        has_any = True
    if rng.random() < r.p_ar1:
        noise += _ar1(rng, length, rng.uniform(*r.ar1_phi), rng.uniform(*r.ar1_sigma))
        has_any = True
    if rng.random() < r.p_heavy_tail:
        df = rng.uniform(*r.heavy_tail_df)
        noise += rng.uniform(*r.heavy_tail_sigma) * rng.standard_t(df, size=length)
        has_any = True
    if not has_any:  # real sensors always carry some noise
        noise += rng.normal(0.0, rng.uniform(*r.white_sigma), size=length)
    noise *= 10.0 ** rng.uniform(*r.noise_gain_log10)
    if rng.random() < r.p_volatility_regime:
        start = int(rng.integers(0, length))
        end = start + int(rng.integers(length // 16, length // 2))
        noise[start:end] *= rng.uniform(*r.volatility_factor)
    return noise


def _ar1(rng: np.random.Generator, length: int, phi: float, sigma: float) -> FloatArray:
    innovations = rng.normal(0.0, sigma * math.sqrt(1.0 - phi * phi), size=length)
    out = np.empty(length)
    state = rng.normal(0.0, sigma)
    for i, e in enumerate(innovations.tolist()):
        state = phi * state + e
        out[i] = state
    return out


def _to_peak_to_peak(x: FloatArray, target: float) -> FloatArray:
    span = float(np.ptp(x))
    return (x - x.mean()) * (target / span) if span > 0 else np.zeros_like(x)


def _place(rng: np.random.Generator, signal: FloatArray) -> FloatArray:
    """Scale the signal to a random physical std around a random offset."""
    names = [name for name, _ in _FAMILIES]
    family = str(rng.choice(names, p=[p for _, p in _FAMILIES]))
    if family == "temperature":  # °C: ambient to hot process
        offset, std = rng.uniform(20.0, 90.0), rng.uniform(0.1, 5.0)
    elif family == "current":  # A
        offset, std = rng.uniform(0.0, 40.0), rng.uniform(0.05, 5.0)
    elif family == "pressure":  # Pa..kPa with a small relative spread
        offset = rng.uniform(1e3, 1e5)
        std = offset * 10.0 ** rng.uniform(-4.0, math.log10(0.05))
    else:  # anything from mV to counts in the 1e5
        magnitude = 10.0 ** rng.uniform(-3.0, 5.0)
        offset, std = magnitude * rng.uniform(-2.0, 5.0), magnitude * rng.uniform(0.01, 1.0)
    spread = float(np.std(signal))
    unit = signal / spread if spread > 0 else signal
    return offset + std * unit
