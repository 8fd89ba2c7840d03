"""A model-based predictor of the pump: its physics from the observed state.

``PumpObserver`` is what an engineer who knows the pump's thermal model (``PumpParams``:
the rise per load, the housing's time constant) but not its faults would build. It sees
only readings (bearing temperature, ambient, the actual load, current), averages them
over ``period_s``, and estimates the heat the model does not explain (wear friction,
lost lubrication, a sensor reading high) from how the bearing temperature actually moved:
for one period of length P, with a = exp(-P / tau),

    heat_k = (T[k+1] - a T[k]) / (1 - a) - (ambient[k] + rise + rise_per_load load[k]).

A line fitted to the last ``fit_periods`` estimates gives its level and trend; the
prediction carries the trend on (never downwards: a cooling it would bet on is not
assumed) and assumes the load sits at the planned limit (the worst case: the process
demand could ask for all of it). It is the advisor's ``Predictor`` (structurally:
``predict(controls, step_s)``), an honest model-based controller, and a baseline that
the learned twin (edge_agent/twin) has to beat.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping

import numpy as np
import numpy.typing as npt

from edge_agent.simulator.pump import PumpParams

__all__ = ["PumpObserver"]

_CHANNELS = ("bearing_temp", "ambient", "load", "current")


class PumpObserver:
    """Predicts bearing_temp and current under planned load limits from observed readings.

    ``predict`` raises the ``failure`` class given (default RuntimeError) until two
    periods have been observed, so a caller can map it to its own error (the advisor
    passes PredictionFailed).
    """

    def __init__(
        self,
        params: PumpParams | None = None,
        period_s: float = 10.0,
        fit_periods: int = 30,
        failure: type[Exception] = RuntimeError,
    ) -> None:
        if not period_s > 0 or fit_periods < 2:
            raise ValueError("period_s must be > 0 and fit_periods >= 2")
        self.params = params or PumpParams()
        self.period_s = period_s
        self._failure = failure
        self._bucket: int | None = None
        self._sums = dict.fromkeys(_CHANNELS, 0.0)
        self._counts = dict.fromkeys(_CHANNELS, 0)
        self._means: deque[dict[str, float]] = deque(maxlen=2)
        self._heat: deque[float] = deque(maxlen=fit_periods)

    def observe(self, channel: str, ts: float, value: float) -> None:
        """One reading (UNIX s, channel units; load as a share 0..1); other channels
        are ignored."""
        if channel not in self._sums or not math.isfinite(value):
            return
        bucket = math.floor(ts / self.period_s)
        if self._bucket is None:
            self._bucket = bucket
        elif bucket > self._bucket:
            self._close()
            self._bucket = bucket
        self._sums[channel] += value
        self._counts[channel] += 1

    def _close(self) -> None:
        previous = self._means[-1] if self._means else {}
        means = {
            c: (self._sums[c] / self._counts[c]) if self._counts[c] else previous.get(c, math.nan)
            for c in _CHANNELS
        }
        for c in _CHANNELS:
            self._sums[c], self._counts[c] = 0.0, 0
        if any(math.isnan(means[c]) for c in ("bearing_temp", "ambient", "load")):
            return
        if self._means:
            p = self.params
            before = self._means[-1]
            a = math.exp(-self.period_s / p.bearing_tau_s)
            moved = (means["bearing_temp"] - a * before["bearing_temp"]) / (1.0 - a)
            explained = (
                before["ambient"] + p.bearing_rise_c + p.bearing_rise_per_load_c * before["load"]
            )
            self._heat.append(moved - explained)
        self._means.append(means)

    def heat(self) -> tuple[float, float]:
        """The unexplained heat now (°C of target) and its trend (°C/s, >= 0)."""
        if len(self._heat) < 1:
            raise self._failure("the pump observer has not seen two full periods yet")
        values = np.fromiter(self._heat, dtype=np.float64)
        if values.size < 3:
            return float(values[-1]), 0.0
        x = np.arange(values.size, dtype=np.float64) * self.period_s
        slope, intercept = np.polyfit(x, values, 1)
        return float(intercept + slope * x[-1]), max(0.0, float(slope))

    def predict(
        self, controls: npt.NDArray[np.float64], step_s: float
    ) -> Mapping[str, npt.NDArray[np.float64]]:
        """bearing_temp and current paths, shape of ``controls`` (candidates, steps): the
        load at each step is the planned limit. Raises the failure class before two
        periods are seen."""
        level, trend = self.heat()
        p = self.params
        last = self._means[-1]
        a = math.exp(-step_s / p.bearing_tau_s)
        temp = np.full(controls.shape[0], last["bearing_temp"])
        bearing = np.empty_like(controls)
        base = last["ambient"] + p.bearing_rise_c
        # The newest mean describes the middle of the last period: the path starts there.
        lead = self.period_s / 2.0
        for j in range(controls.shape[1]):
            heat = level + trend * (lead + (j + 1) * step_s)
            target = base + p.bearing_rise_per_load_c * controls[:, j] + heat
            temp = target + (temp - target) * a
            bearing[:, j] = temp
        current_offset = 0.0
        if not math.isnan(last["current"]):
            current_offset = last["current"] - (
                p.current_no_load_a + p.current_per_load_a * last["load"]
            )
        current = p.current_no_load_a + p.current_per_load_a * controls + current_offset
        return {"bearing_temp": bearing, "current": current}
