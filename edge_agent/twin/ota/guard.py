"""The live guard after a twin swap: for its first periods in service, the new twin and
the previous one (in shadow) both predict every period that completes, one step and k
steps ahead under the controls that actually happened, and their errors against the
actual period means are summed.

Errors are in the previous twin's training scales (z units), averaged over the output
channels, so a bearing in °C and a vibration in mm/s weigh alike and the figure does
not change with the new twin's own normalization.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from edge_agent.twin.model import LoadedTwin
from edge_agent.twin.state import FloatArray

MAE_FLOOR = 1e-9
"""Absolute slack on the comparison, so two perfect twins do not fail the guard."""


class TwinGuard:
    """Counts the first ``periods`` periods that end after ``since`` (UNIX s).

    new / previous: the twin in service and the one it replaced (same channels, same
    period: ``check_twin_release``). steps: k of the k-step comparison (capped at both
    twins' horizons). Not thread-safe: feed it from the event loop, where the what-if
    and the advisor use the twins too.
    """

    def __init__(
        self, new: LoadedTwin, previous: LoadedTwin, periods: int, steps: int, since: float
    ) -> None:
        self.new = new
        self.previous = previous
        self.target = periods
        self.k = max(1, min(steps, new.spec.horizon_steps, previous.spec.horizon_steps))
        self.window = max(new.spec.window_steps, previous.spec.window_steps)
        self.last_end = since
        self.periods = 0
        self.error_new = np.zeros(2)
        """Summed errors of the new twin: [one step, k steps]."""
        self.error_old = np.zeros(2)
        self.failure: str | None = None
        n_out = len(previous.model.outputs)
        self._n_out = n_out
        self._scale = np.array([c.scale for c in previous.spec.channels[:n_out]])

    @property
    def history_periods(self) -> int:
        """Periods of history one observation needs: a window, then k actual periods."""
        return self.window + self.k

    @property
    def next_end(self) -> float:
        """When the next period to count ends (UNIX s): asking the store earlier is
        pointless."""
        period = self.new.period_s
        return (math.floor(self.last_end / period + 1e-9) + 1) * period

    @property
    def is_done(self) -> bool:
        return self.failure is not None or self.periods >= self.target

    def observe(self, history: FloatArray, end: float) -> bool:
        """Compare both twins on the ``history_periods`` periods ending at ``end``
        (UNIX s): each rolls k periods from the window before them under their actual
        controls. Counts (returns True) once per period that ends after ``since``."""
        if self.is_done or end <= self.last_end + 1e-9:
            return False
        if history.shape[0] != self.history_periods:
            return False
        errors = []
        for twin in (self.new, self.previous):
            path = self._roll(twin, history)
            actual = history[self.window :, : self._n_out]
            with np.errstate(all="ignore"):
                err = np.abs(path - actual) / self._scale
            errors.append((float(err[0].mean()), float(err[-1].mean())))
        new, old = errors
        self.last_end = end
        if not all(math.isfinite(e) for e in new):
            self.failure = f"the twin predicted a non-finite value for the period ending {end:.0f}"
            return True
        self.error_new += new
        self.error_old += old
        self.periods += 1
        if not np.all(np.isfinite(self.error_new)):  # errors so large their sum overflows
            self.failure = f"the twin's errors overflow by the period ending {end:.0f}"
        return True

    def _roll(self, twin: LoadedTwin, history: FloatArray) -> FloatArray:
        w = twin.spec.window_steps
        twin.model.load_state(history[self.window - w : self.window])
        with np.errstate(all="ignore"):
            return twin.model.roll(history[self.window :, self._n_out :])

    @property
    def mae_new(self) -> float | None:
        """The new twin's one-step error (z units, averaged over outputs and periods);
        None before a period counted or when it is not finite (not reportable)."""
        return _mean(float(self.error_new[0]), self.periods)

    @property
    def mae_old(self) -> float | None:
        return _mean(float(self.error_old[0]), self.periods)

    def figures(self) -> dict[str, Any]:
        """The guard's figures for the update report (``ModelUpdateReport.guard_*``)."""
        return {
            "guard_samples": self.periods,
            "guard_mae_new": self.mae_new,
            "guard_mae_old": self.mae_old,
        }

    def verdict(self, margin: float) -> str | None:
        """Why the new twin must be rolled back, or None to keep it: a failure, or an
        error worse than the previous twin's by more than ``margin`` (0.10 = 10 %) one
        step or k steps ahead, over the same periods."""
        if self.failure is not None:
            return f"failed in the live guard: {self.failure}"
        if not self.periods:
            return None
        n = self.periods
        worse = [
            f"{label} error {new / n:.4g} vs {old / n:.4g}"
            for label, new, old in zip(
                ("one-step", f"{self.k}-step"), self.error_new, self.error_old, strict=True
            )
            if new > old * (1.0 + margin) + MAE_FLOOR * n
        ]
        if worse:
            return (
                f"{'; '.join(worse)} (training scales) over {n} periods: worse by more than "
                f"{margin:.0%}"
            )
        return None


def _mean(total: float, count: int) -> float | None:
    return total / count if count and math.isfinite(total) else None
