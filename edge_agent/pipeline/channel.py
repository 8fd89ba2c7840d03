"""One channel's path from a raw reading to a scored, stored, alarm-checked sample."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Protocol

import numpy as np
import numpy.typing as npt

from edge_agent.alarms.engine import AlarmEngine
from edge_agent.alarms.reason import WindowSnapshot
from edge_agent.anomaly.base import AnomalyScorer
from edge_agent.cleaning.cleaner import ChannelCleaner, RejectReason
from edge_agent.cleaning.resample import Resampler
from edge_agent.config import ChannelConfig
from edge_agent.model.inference.forecaster import Forecaster
from edge_agent.pipeline.aggregate import PeriodMean
from edge_agent.pipeline.recent import RecentSteps
from edge_agent.pipeline.shadow import ShadowGuard
from edge_agent.pipeline.window import SampleWindow
from edgetwin_contracts.batch import MAX_WINDOW_POINTS


class SampleSink(Protocol):
    """Where processed samples go (the store)."""

    def add_sample(
        self, ts: float, channel: str, value: float, forecast: float | None, score: float | None
    ) -> None: ...


SampleObserver = Callable[[str, float, float, float | None, float | None, "ChannelPipeline"], None]
"""(channel, ts, value, forecast made for it, score, pipeline): the backtest's hook, called
at each model step (per sample, or per model period with ts its start and value its mean)."""

_DEFAULT_GAP_PERIODS = 10.0
_STEP_REFRESH = 1023
"""Without a period, the step's time (for forecast messages) is re-estimated after the
2nd sample and every 1024 after."""


class ChannelPipeline:
    """Cleans, resamples, windows, forecasts and scores one channel.

    Per processed sample: the rate, then the model step, then the alarm rules see
    (value, latest forecasts, score, rate) and the sample goes to the store. The model
    step runs on every processed sample, or, when the model has its own period
    (``model_period_s`` other than the channel's), once per period on the period's mean
    (``PeriodMean``): value, rate and health rules still see every sample. A model step:
    the forecast made for this step ``horizons[0]`` steps ago gives the residual and the
    anomaly score; the window advances and the next forecasts are made. Nothing here
    allocates per sample beyond what numpy's ufunc calls and the store's buffer do.
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
        model_period_s: float | None = None,
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
        self.recent = RecentSteps(MAX_WINDOW_POINTS)
        """The last model steps with their times, for the reasons of alarms."""
        self._forecast_ts: float | None = None
        """When ``forecast`` was made (the last model step with a forecast)."""
        self.scorer: AnomalyScorer = config.score.build()
        self.horizons = forecaster.horizons
        depth = max(self.horizons)
        # Forecasts made at the last ``depth`` model steps (row = step % depth): the one
        # made h steps ago for now is in row (step - h) % depth.
        self._made = np.full((depth, len(self.horizons)), np.nan)
        self._shadow_made = np.full((depth, len(self.horizons)), np.nan)
        self._errors_new = np.zeros(len(self.horizons))
        self._errors_old = np.zeros(len(self.horizons))
        self._pos = 0
        self.forecast: npt.NDArray[np.float64] = np.full(len(self.horizons), np.nan)
        """Forecasts made at the last model step, one per horizon (channel units)."""
        self.has_forecast = False
        self.last_ts: float | None = None
        self.last_value: float | None = None
        self.last_score: float | None = None
        self.first_ts: float | None = None
        self.processed = 0
        self.model_steps = 0
        """Steps the model ran (one per processed sample, or one per model period)."""
        self.readings = 0
        self.window_restarts = 0
        self.inference_ns = 0
        self._guard: ShadowGuard | None = None
        self._on_guard_failure: Callable[[], None] | None = None
        self._means: PeriodMean | None = None
        self.model_period_s: float | None = None
        """Seconds between two model steps: the model's period, else the channel's
        sample_period_s; None when neither is set (the model runs on every reading)."""
        self._use_period(model_period_s)
        engine.set_reason_source(name, self)

    def score_parts(self) -> Mapping[str, float]:
        """The last anomaly score's parts (``AnomalyScorer.parts``)."""
        return self.scorer.parts()

    def window_snapshot(self) -> WindowSnapshot | None:
        """The last model steps and the forecast made at the last of them (None before
        the first step); built when an alarm is raised."""
        ts, values = self.recent.copy()
        if not ts:
            return None
        horizons_s = self.horizon_s
        if not self.has_forecast or horizons_s is None or self._forecast_ts is None:
            return WindowSnapshot(ts, values)
        forecast = tuple(float(v) for v in self.forecast[:MAX_WINDOW_POINTS])
        return WindowSnapshot(
            ts, values, self._forecast_ts, tuple(horizons_s[:MAX_WINDOW_POINTS]), forecast
        )

    def _use_period(self, model_period_s: float | None) -> None:
        own = self.config.sample_period_s
        if model_period_s is None or model_period_s == own:
            self._means = None
            self.model_period_s = own
        else:
            self._means = PeriodMean(model_period_s)
            self.model_period_s = model_period_s
        self._engine.set_step_period(self.name, self.step_s)

    @property
    def step_s(self) -> float | None:
        """Seconds between two model steps: ``model_period_s``, else (the model on every
        reading of a channel without sample_period_s) the mean interval seen so far;
        None before two samples."""
        period = self.model_period_s
        return period if period is not None else self.feed_period_s

    @property
    def horizon_s(self) -> list[float] | None:
        """The horizons in seconds ahead (None while the step period is unknown)."""
        step = self.step_s
        return None if step is None else [h * step for h in self.horizons]

    @property
    def feed_period_s(self) -> float | None:
        """How often this channel delivers a sample, seconds: its sample_period_s, else
        the mean interval seen so far (None before two samples). A model whose period is
        shorter cannot be fed from it."""
        if self.config.sample_period_s is not None:
            return self.config.sample_period_s
        first, last = self.first_ts, self.last_ts
        if first is None or last is None or self.processed < 2:
            return None
        return (last - first) / (self.processed - 1)

    def process(self, ts: float, value: float) -> RejectReason | None:
        """Take one reading. Returns the reason it was rejected, or None."""
        self.readings += 1
        reason = self.cleaner.check(ts, value)
        if reason is not None:
            return reason
        resampler = self.resampler
        emitted = resampler.push(ts, value)
        if resampler.take_restart() and self._means is None:
            # At the model's own period a gap is a period without a sample (PeriodMean).
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
        model_period_s: float | None = None,
    ) -> None:
        """Use ``forecaster`` (at ``model_period_s``) from the next sample on (same
        window length and horizons: the caller checks). A new period restarts the
        window: the samples in it are of the old period. With ``guard``, the guard's
        previous forecaster runs in shadow on the same steps; if the new one raises,
        ``on_guard_failure`` swaps every channel back and this step is forecast by the
        previous one (no sample lost)."""
        self._forecaster = forecaster
        self._guard = guard
        self._on_guard_failure = on_guard_failure
        self._shadow_made.fill(np.nan)
        before = (self.model_period_s, self._means is None)
        self._use_period(model_period_s)
        if (self.model_period_s, self._means is None) != before:
            if self._means is not None:
                self._means.reset()
            self._restart()

    def _restart(self) -> None:
        self.window.reset()
        self._made.fill(np.nan)
        self._shadow_made.fill(np.nan)
        self.has_forecast = False
        self.window_restarts += 1

    def _step(self, ts: float, value: float) -> None:
        rate: float | None = None
        last_ts = self.last_ts
        if last_ts is None:
            self.first_ts = ts
        elif self.last_value is not None and ts > last_ts:
            rate = (value - self.last_value) / (ts - last_ts)
        means = self._means
        forecast_for_sample: float | None = None
        score: float | None = None
        if means is None:
            forecast_for_sample = self._model_step(ts, value)
            score = self.last_score
        elif means.push(ts, value):
            if means.is_gap:
                self._restart()
            self._model_step(means.out_ts, means.out_value)
            score = self.last_score
        self.last_ts = ts
        self.last_value = value
        self.processed += 1
        if self.model_period_s is None and (self.processed & _STEP_REFRESH) == 2:
            # Steps are readings here: their time is the interval seen so far.
            self._engine.set_step_period(self.name, self.feed_period_s)
        self._engine.on_sample(
            self.name, ts, value, self.forecast if self.has_forecast else None, score, rate
        )
        self._sink.add_sample(ts, self.name, value, forecast_for_sample, score)

    def _model_step(self, ts: float, value: float) -> float | None:
        """One step of the model on ``value`` (a sample, or a period's mean starting at
        ``ts``); returns the forecast that was made for it, if any."""
        pos = self._pos
        horizons = self.horizons
        depth = self._made.shape[0]
        row = pos - horizons[0]
        made_for_now = float(self._made[row + depth if row < 0 else row, 0])
        forecast_for_sample: float | None = None
        score: float | None = None
        if made_for_now == made_for_now:  # not NaN
            forecast_for_sample = made_for_now
            score = self.scorer.score(ts, value, made_for_now)
        guard = self._guard
        if guard is not None:
            self._record_guard(guard, value, pos)
        window = self.window
        window.push(value)
        self.recent.push(ts, value)
        forecast: npt.NDArray[np.float64] | None = None
        if window.is_full:
            start = time.perf_counter_ns()
            if guard is None:
                forecast = self._forecaster.forecast(window.view())
            else:
                forecast = self._guarded_forecast(guard, pos)
            self.inference_ns += time.perf_counter_ns() - start
        if forecast is not None:
            self.forecast[:] = forecast
            self.has_forecast = True
            self._forecast_ts = ts
            self._made[pos] = forecast
        else:
            self._made[pos] = np.nan
            self._shadow_made[pos] = np.nan
        self._pos = pos + 1 if pos + 1 < depth else 0
        self.last_score = score
        self.model_steps += 1
        if self._observer is not None:
            self._observer(self.name, ts, value, forecast_for_sample, score, self)
        return forecast_for_sample

    def _record_guard(self, guard: ShadowGuard, value: float, pos: int) -> None:
        """Both models' errors at every horizon for this step, when both made all of
        them (the guard judges every horizon a rule or the page shows)."""
        made, shadow = self._made, self._shadow_made
        err_new, err_old = self._errors_new, self._errors_old
        depth = made.shape[0]
        for i, h in enumerate(self.horizons):
            row = pos - h
            if row < 0:
                row += depth
            new = float(made[row, i])
            old = float(shadow[row, i])
            if new != new or old != old:  # NaN: not made (window filling, restart)
                return
            err_new[i] = abs(value - new)
            err_old[i] = abs(value - old)
        guard.record_horizons(err_new, err_old)

    def _guarded_forecast(self, guard: ShadowGuard, pos: int) -> npt.NDArray[np.float64] | None:
        """The new model's forecast, the previous one's in shadow. On a failure: the
        previous model's, or None when swapping back restarted the window (another
        period)."""
        view = self.window.view()
        try:
            forecast = self._forecaster.forecast(view)
            if not np.all(np.isfinite(forecast)):
                raise ValueError(f"non-finite forecast {forecast.tolist()}")
        except Exception as exc:  # any failure of the new model ends its trial
            guard.fail(f"forecast failed on channel {self.name}: {type(exc).__name__}: {exc}")
            if self._on_guard_failure is not None:
                self._on_guard_failure()
            if not self.window.is_full:
                return None
            return self._forecaster.forecast(view)
        self._shadow_made[pos] = guard.previous.forecast(view)
        return forecast
