"""The live guard after a model swap: the previous forecaster runs in shadow on the same
model steps, and both models' errors are summed against the actual samples at every
horizon (an alarm rule or the status page may use any of them)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt

from edge_agent.model.inference.forecaster import Forecaster
from edgetwin_common.durations import duration_text


class ShadowGuard:
    """Counts the first ``samples`` model steps (all channels) at which both models made
    a forecast for every horizon, and the absolute errors per horizon.

    previous: the forecaster that ran before the swap (runs in shadow).
    on_done: called once, on the event loop, when the count is reached or the new model
        failed (``failure`` set); the pipeline has already swapped back on a failure.
    horizons: the models' horizons, steps ahead (both have the same ones).
    previous_period_s: the previous model's ``input.sample_period_s`` (the period the
        pipeline goes back to on a rollback); period_s: the new model's (messages).
    """

    __slots__ = (
        "error_new",
        "error_old",
        "failure",
        "horizons",
        "is_done",
        "on_done",
        "period_s",
        "previous",
        "previous_period_s",
        "samples",
        "target",
    )

    def __init__(
        self,
        previous: Forecaster,
        samples: int,
        on_done: Callable[[ShadowGuard], None],
        *,
        horizons: Sequence[int] | None = None,
        previous_period_s: float | None = None,
        period_s: float | None = None,
    ) -> None:
        self.previous = previous
        self.target = samples
        self.on_done = on_done
        self.horizons = tuple(horizons if horizons is not None else previous.horizons)
        self.previous_period_s = previous_period_s
        self.period_s = period_s
        self.samples = 0
        self.error_new: npt.NDArray[np.float64] = np.zeros(len(self.horizons))
        """Summed absolute errors of the new model, per horizon."""
        self.error_old: npt.NDArray[np.float64] = np.zeros(len(self.horizons))
        self.failure: str | None = None
        self.is_done = False

    def record(self, error_new: float, error_old: float) -> None:
        """One step's one-step errors (a single-horizon model)."""
        if self.is_done:
            return
        self.error_new[0] += error_new
        self.error_old[0] += error_old
        self._count()

    def record_horizons(
        self, error_new: npt.NDArray[np.float64], error_old: npt.NDArray[np.float64]
    ) -> None:
        """One step's absolute errors, one per horizon, for both models."""
        if self.is_done:
            return
        self.error_new += error_new
        self.error_old += error_old
        self._count()

    def _count(self) -> None:
        self.samples += 1
        if self.samples >= self.target:
            self.is_done = True
            self.on_done(self)

    def fail(self, reason: str) -> None:
        if self.is_done:
            return
        self.failure = reason
        self.is_done = True
        self.on_done(self)

    @property
    def mae_new(self) -> float | None:
        """The new model's MAE at the first horizon (one step ahead, normally)."""
        return float(self.error_new[0]) / self.samples if self.samples else None

    @property
    def mae_old(self) -> float | None:
        return float(self.error_old[0]) / self.samples if self.samples else None

    @property
    def mae_by_horizon_new(self) -> list[float]:
        n = self.samples
        return [float(e) / n for e in self.error_new] if n else []

    @property
    def mae_by_horizon_old(self) -> list[float]:
        n = self.samples
        return [float(e) / n for e in self.error_old] if n else []

    def horizon_label(self, index: int) -> str:
        """ "h4 (4 min)": a horizon in steps, and in time when the period is known."""
        h = self.horizons[index]
        if self.period_s is None:
            return f"h{h}"
        return f"h{h} ({duration_text(h * self.period_s)})"


MAE_FLOOR = 1e-9
"""Absolute slack on the MAE comparison, so two perfect models do not fail the guard."""


def guard_verdict(guard: ShadowGuard, margin: float) -> str | None:
    """Why the new model must be rolled back after ``guard``, or None to keep it: a
    failure, or an MAE worse than the previous model's by more than ``margin`` (0.10 =
    10 %) at any horizon, on the same steps. The one rule for the OTA manager and the
    replay."""
    if guard.failure is not None:
        return f"failed in the live guard: {guard.failure}"
    if not guard.samples:
        return None
    new, old = guard.mae_by_horizon_new, guard.mae_by_horizon_old
    worse = [
        f"{guard.horizon_label(i)} MAE {n:.6g} vs {o:.6g}"
        for i, (n, o) in enumerate(zip(new, old, strict=True))
        if n > o * (1.0 + margin) + MAE_FLOOR
    ]
    if worse:
        return f"{'; '.join(worse)} over {guard.samples} samples: worse by more than {margin:.0%}"
    return None
