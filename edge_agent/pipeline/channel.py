"""One channel's path from a raw reading to a scored, stored, alarm-checked sample."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Protocol

import numpy as np
import numpy.typing as npt

from edge_agent.alarms.engine import AlarmEngine
from edge_agent.anomaly.base import AnomalyScorer
from edge_agent.cleaning.cleaner import ChannelCleaner, RejectReason
from edge_agent.cleaning.resample import Resampler
from edge_agent.config import ChannelConfig
from edge_agent.model.inference.forecaster import Forecaster
from edge_agent.pipeline.shadow import ShadowGuard
from edge_agent.pipeline.window import SampleWindow


class SampleSink(Protocol):
    """Where processed samples go (the store)."""

    def add_sample(
        self, ts: float, channel: str, value: float, forecast: float | None, score: float | None
    ) -> None: ...


SampleObserver = Callable[[str, float, float, float | None, float | None, "ChannelPipeline"], None]
"""(channel, ts, value, forecast made for it, score, pipeline): the backtest's per-sample hook."""

_DEFAULT_GAP_PERIODS = 10.0


class ChannelPipeline:
    """Cleans, resamples, windows, forecasts and scores one channel.

    Per processed sample: the one-step forecast made for it (from the window before
    it) gives the residual and the anomaly score; then the window advances and the next
    forecasts are made; then the alarm rules see (value, forecasts, score, rate) and the
    sample goes to the store. Nothing here allocates per sample beyond what numpy's
    ufunc calls and the store's buffer do.
    """

    def __init__(
        self,
        name: str,
        config: ChannelConfig,
        forecaster: Forecaster,
        engine: AlarmEngine,
        sink: SampleSink,
        source: str = "",
        observer: SampleObserver | None = None,
    ) -> None:
        self.name = name
        self.config = config
        self.source = source
        self._forecaster = forecaster
        self._engine = engine
        self._sink = sink
        self._observer = observer
        self.cleaner = ChannelCleaner(config.cleaning)
        period = config.sample_period_s
        max_gap = config.max_gap_s
        if max_gap is None and period is not None:
            max_gap = _DEFAULT_GAP_PERIODS * period
        self.resampler = Resampler(period, max_gap)
        self.window = SampleWindow(forecaster.window_length)
        self.scorer: AnomalyScorer = config.score.build()
        self.horizons = forecaster.horizons
        # horizons[0] may be > 1: keep the forecasts made for the next horizons[0] samples.
        self._lead = self.horizons[0]
        self._pending = np.full(self._lead, np.nan)
        self._pending_pos = 0
        self.forecast: npt.NDArray[np.float64] = np.full(len(self.horizons), np.nan)
        """Forecasts made after the last sample, one per horizon (channel units)."""
        self.has_forecast = False
        self.last_ts: float | None = None
        self.last_value: float | None = None
        self.last_score: float | None = None
        self.processed = 0
        self.readings = 0
        self.window_restarts = 0
        self.inference_ns = 0
        self._guard: ShadowGuard | None = None
        self._shadow_pending = np.full(self._lead, np.nan)
        self._on_guard_failure: Callable[[], None] | None = None

    def process(self, ts: float, value: float) -> RejectReason | None:
        """Take one reading. Returns the reason it was rejected, or None."""
        self.readings += 1
        reason = self.cleaner.check(ts, value)
        if reason is not None:
            return reason
        resampler = self.resampler
        emitted = resampler.push(ts, value)
        if resampler.take_restart():
            self._restart()
        out_ts, out_values = resampler.out_ts, resampler.out_values
        for i in range(emitted):
            self._step(float(out_ts[i]), float(out_values[i]))
        return None

    def swap(
        self,
        forecaster: Forecaster,
        guard: ShadowGuard | None = None,
        on_guard_failure: Callable[[], None] | None = None,
    ) -> None:
        """Use ``forecaster`` from the next sample on (same window length and horizons:
        the caller checks). With ``guard``, the guard's previous forecaster runs in
        shadow; if the new one raises, ``on_guard_failure`` swaps every channel back and
        this sample is forecast by the previous one (no sample lost)."""
        self._forecaster = forecaster
        self._guard = guard
        self._on_guard_failure = on_guard_failure
        self._shadow_pending.fill(np.nan)

    def _restart(self) -> None:
        self.window.reset()
        self._pending.fill(np.nan)
        self._shadow_pending.fill(np.nan)
        self.has_forecast = False
        self.window_restarts += 1

    def _step(self, ts: float, value: float) -> None:
        pos = self._pending_pos
        made_for_now = float(self._pending[pos])
        forecast_for_sample: float | None = None
        score: float | None = None
        if not math.isnan(made_for_now):
            forecast_for_sample = made_for_now
            score = self.scorer.score(value, made_for_now)
        rate: float | None = None
        if self.last_ts is not None and self.last_value is not None and ts > self.last_ts:
            rate = (value - self.last_value) / (ts - self.last_ts)
        guard = self._guard
        if guard is not None:
            shadow_made = float(self._shadow_pending[pos])
            if not (math.isnan(made_for_now) or math.isnan(shadow_made)):
                guard.record(abs(value - made_for_now), abs(value - shadow_made))
        window = self.window
        window.push(value)
        forecast = None
        if window.is_full:
            start = time.perf_counter_ns()
            if guard is None:
                forecast = self._forecaster.forecast(window.view())
            else:
                forecast = self._guarded_forecast(guard, pos)
            self.inference_ns += time.perf_counter_ns() - start
            self.forecast[:] = forecast
            self.has_forecast = True
            # The forecast for horizons[0] samples ahead is due lead samples from now.
            self._pending[pos] = forecast[0]
        else:
            self._pending[pos] = np.nan
            self._shadow_pending[pos] = np.nan
        self._pending_pos = pos + 1 if pos + 1 < self._lead else 0
        self.last_ts = ts
        self.last_value = value
        self.last_score = score
        self.processed += 1
        self._engine.on_sample(self.name, ts, value, forecast, score, rate)
        self._sink.add_sample(ts, self.name, value, forecast_for_sample, score)
        if self._observer is not None:
            self._observer(self.name, ts, value, forecast_for_sample, score, self)

    def _guarded_forecast(self, guard: ShadowGuard, pos: int) -> npt.NDArray[np.float64]:
        view = self.window.view()
        try:
            forecast = self._forecaster.forecast(view)
            if not np.all(np.isfinite(forecast)):
                raise ValueError(f"non-finite forecast {forecast.tolist()}")
        except Exception as exc:  # any failure of the new model ends its trial
            guard.fail(f"forecast failed on channel {self.name}: {type(exc).__name__}: {exc}")
            if self._on_guard_failure is not None:
                self._on_guard_failure()
            return self._forecaster.forecast(view)
        self._shadow_pending[pos] = guard.previous.forecast(view)[0]
        return forecast
