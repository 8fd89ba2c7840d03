"""The twin model as the advisor's predictor (``predictor = "twin"``, docs/advisor.md).

Each ``predict(controls, step_s)``:

1. the state: the last ``window_steps`` periods from the store's summaries (the same
   rows the what-if and the cloud start from, ``TwinService.state``), re-read only once
   a newer period can have been written; none, a channel short, or a state more than
   ``STALE_PERIODS`` periods old is a ``PredictionFailed`` naming why, so the guards
   write the safe value;
2. the plan: the twin's control per period from its state's end on. The part of a
   period already past is the control's mean as read (the readings since the state's
   end, which the summaries do not hold yet); the part ahead is each candidate's planned
   value, time-weighted over the advisor's steps inside the period. The twin takes the
   actual load, the advisor plans a load *limit*: the limit is taken as the load (the
   worst case, the process demand can ask for all of it), as the physics observer does;
3. every candidate rolled at once (``TwinBatch``: one int8 invoke per period for all);
4. each output channel's path (period means, placed at the periods' middles, the last
   stored period first) interpolated to the advisor's step times ``now + (j + 1) step_s``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import numpy.typing as npt

from edge_agent.twin.advisor.errors import PredictionFailed
from edge_agent.twin.batch import TwinBatch
from edge_agent.twin.errors import TwinStateIncomplete, TwinUnavailable
from edge_agent.twin.model import LoadedTwin
from edge_agent.twin.service import STALE_PERIODS, TwinService
from edgetwin_common.errors import EdgetwinError

__all__ = ["TwinPredictor"]

Paths = npt.NDArray[np.float64]


class TwinPredictor:
    """Predicts the twin's output channels under a batch of planned control paths.

    service: the agent's twin (``TwinService``: the model and the store's summaries).
    control: the advisor's control channel; it must be one of the twin's controls (the
    others are held at their last stored value).
    """

    def __init__(self, service: TwinService, control: str, residual_periods: int = 0) -> None:
        if residual_periods < 0:
            raise ValueError(f"residual_periods must be >= 0, got {residual_periods}")
        self.service = service
        self.control = control
        self.residual_periods = residual_periods
        self.offset: tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]] | None = None
        """Per output, the twin's recent unexplained change per period and its trend
        (channel units per period, per period squared); None until measured."""
        self._residual_batch: TwinBatch | None = None
        self._now: float | None = None
        self._last_control: float | None = None
        self._buckets: dict[int, list[float]] = {}
        self._state: tuple[npt.NDArray[np.float64], float] | None = None
        self._batch: TwinBatch | None = None
        self._for: LoadedTwin | None = None
        """The twin the batches, the state and the offset above were made with: a twin
        update (``TwinService.swap``) drops them, so the next plan uses the new twin."""
        twin = service.twin
        if twin is not None and control not in twin.model.controls:
            raise ValueError(
                f"advisor.control {control!r} is not one of the twin's controls "
                f"{twin.model.controls}"
            )

    def observe(self, channel: str, ts: float, value: float) -> None:
        """One reading (UNIX s): the data clock, and the control's recent means."""
        if not math.isfinite(ts):
            return
        if self._now is None or ts > self._now:
            self._now = ts
        twin = self.service.twin
        if channel != self.control or twin is None or not math.isfinite(value):
            return
        bucket = math.floor(ts / twin.period_s)
        acc = self._buckets.get(bucket)
        if acc is None:
            acc = self._buckets[bucket] = [0.0, 0.0]
            for old in [b for b in self._buckets if b < bucket - STALE_PERIODS - 2]:
                del self._buckets[old]
        acc[0] += value
        acc[1] += 1.0
        self._last_control = value

    def predict(self, controls: Paths, step_s: float) -> Mapping[str, Paths]:
        """Per twin output channel, the path under each row of ``controls`` (candidates,
        steps), the same shape. Raises PredictionFailed with the reason."""
        twin = self.service.twin
        if twin is None:
            raise PredictionFailed(f"the twin is unavailable: {self.service.unavailable}")
        if twin is not self._for:
            self._for = twin
            self._batch = self._residual_batch = self._state = self.offset = None
        now = self._now
        if now is None:
            raise PredictionFailed("no reading yet (the twin's state starts from the readings)")
        history, end = self._current_state(twin, now)
        period = twin.period_s
        rows, steps = controls.shape
        horizon = steps * step_s
        # Periods from the state's end to past the last step time (the path's knots are
        # the periods' middles, so half a period more).
        count = max(1, math.ceil((now - end + horizon) / period + 0.5))
        if count > twin.spec.horizon_steps:
            raise PredictionFailed(
                f"the horizon from the state's end ({count} periods of {period:g} s) is "
                f"beyond the twin's {twin.spec.horizon_steps} periods"
            )
        batch = self._batch
        if batch is None or batch.rows != rows or batch.steps < count:
            steps_max = math.ceil((STALE_PERIODS * period + horizon) / period + 1.5)
            try:
                batch = self._batch = TwinBatch(twin.model, rows, max(count, steps_max))
            except EdgetwinError as exc:
                raise PredictionFailed(f"the twin's batch could not be built: {exc}") from None
        plan = self._plan(twin, history, end, now, controls, step_s, count)
        offsets = None
        if self.offset is not None:
            level, trend = self.offset
            offsets = level + trend * np.arange(1, count + 1)[:, None]
        try:
            path = batch.roll(history, plan, offsets)
        except TwinStateIncomplete as exc:
            raise PredictionFailed(str(exc)) from None
        # Knots: the last stored period, then each predicted one, at their middles (s
        # from now); values (rows, count + 1, outputs).
        n_out = len(twin.model.outputs)
        knots = end + (np.arange(-1, count) + 0.5) * period - now
        values = np.concatenate(
            [np.broadcast_to(history[-1, :n_out], (rows, 1, n_out)), path], axis=1
        )
        at = step_s * np.arange(1, steps + 1)
        hi = np.clip(np.searchsorted(knots, at, side="left"), 1, count)
        frac = ((at - knots[hi - 1]) / period)[None, :, None]
        resampled = values[:, hi - 1, :] * (1.0 - frac) + values[:, hi, :] * frac
        if not np.all(np.isfinite(resampled)):
            raise PredictionFailed("the twin's paths are not finite from this state")
        return {name: resampled[:, :, j] for j, name in enumerate(twin.model.outputs)}

    def _current_state(self, twin: LoadedTwin, now: float) -> tuple[npt.NDArray[np.float64], float]:
        state = self._state
        # A newer period can be stored only once the one after the cached state has
        # ended; until then the cached state is the latest (and a store query is saved).
        if state is None or now >= state[1] + twin.period_s:
            self._state = None
            w, extra = twin.spec.window_steps, self.residual_periods
            # The longest history stored back to back: all the residual periods, a few
            # (warming up), or none (the twin alone).
            for periods in sorted({w + extra, w + min(extra, 3), w}, reverse=True):
                try:
                    history, end = self.service.state(now, flush=False, periods=periods)
                except TwinUnavailable as exc:
                    raise PredictionFailed(str(exc)) from None
                except TwinStateIncomplete as exc:
                    if periods == w:
                        raise PredictionFailed(str(exc)) from None
                    continue
                try:
                    self.offset = self._residuals(twin, history) if periods > w else None
                except EdgetwinError as exc:
                    raise PredictionFailed(f"the twin's residuals failed: {exc}") from None
                state = self._state = (history[-w:], end)
                break
        assert state is not None
        return state

    def _residuals(
        self, twin: LoadedTwin, history: npt.NDArray[np.float64]
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """What the twin did not explain over the older periods of ``history``: each
        period's actual change minus the twin's one-period prediction from the window
        before it; a line through them gives the level now and its trend (fewer than 3:
        the last one, no trend). A heat the twin never learnt (wear, lost lubrication, a
        sensor drifting) shows here, and is carried forward in the roll."""
        w = twin.spec.window_steps
        n_out = len(twin.model.outputs)
        extra = len(history) - w
        batch = self._residual_batch
        if batch is None or batch.rows != extra:
            batch = self._residual_batch = TwinBatch(twin.model, extra, 1)
        windows = np.lib.stride_tricks.sliding_window_view(history, w, axis=0)[:extra]
        windows = windows.transpose(0, 2, 1)  # (extra, w, channels)
        predicted = batch.roll(windows, history[w:, None, n_out:])[:, 0, :]
        errors = history[w:, :n_out] - predicted
        if extra < 3:
            return errors[-1].copy(), np.zeros(n_out)
        x = np.arange(extra, dtype=np.float64)
        slope, intercept = np.polyfit(x, errors, 1)
        return intercept + slope * x[-1], slope

    def _plan(
        self,
        twin: LoadedTwin,
        history: npt.NDArray[np.float64],
        end: float,
        now: float,
        controls: Paths,
        step_s: float,
        count: int,
    ) -> npt.NDArray[np.float64]:
        """(rows, count, twin controls): each period's mean control, read then planned."""
        period = twin.period_s
        names = twin.model.controls
        n_out = len(twin.model.outputs)
        k = names.index(self.control)
        rows, steps = controls.shape
        starts = end + period * np.arange(count)
        ends = starts + period
        # The part of each period already read: the control's mean in its bucket so far.
        seen = np.clip(np.minimum(ends, now) - starts, 0.0, period)
        last = self._last_control
        fallback = float(history[-1, n_out + k]) if last is None else last
        read = np.array(
            [self._bucket_mean(math.floor(s / period + 1e-9), fallback) for s in starts]
        )
        # The part ahead: step j holds controls[:, j] over (now + j step, now + (j+1) step],
        # the last value held on past the horizon.
        edges = now + step_s * np.arange(steps + 1, dtype=np.float64)
        lo = np.concatenate([edges[:-1], edges[-1:]])
        hi = np.concatenate([edges[1:], [max(float(ends[-1]), float(edges[-1]))]])
        overlap = np.clip(
            np.minimum(ends[:, None], hi[None, :]) - np.maximum(starts[:, None], lo[None, :]),
            0.0,
            None,
        )
        extended = np.concatenate([controls, controls[:, -1:]], axis=1)
        plan = np.empty((rows, count, len(names)))
        plan[...] = history[-1, n_out:]
        plan[:, :, k] = (extended @ overlap.T + seen * read) / period
        return plan

    def _bucket_mean(self, bucket: int, fallback: float) -> float:
        acc = self._buckets.get(bucket)
        return acc[0] / acc[1] if acc else fallback
