"""The live guard after a model swap: the previous forecaster runs in shadow and both
one-step errors are summed against the actual readings."""

from __future__ import annotations

from collections.abc import Callable

from edge_agent.model.inference.forecaster import Forecaster


class ShadowGuard:
    """Counts the first ``samples`` processed samples (all channels) that have a one-step
    forecast from both models, and their absolute errors.

    previous: the forecaster that ran before the swap (runs in shadow).
    on_done: called once, on the event loop, when the count is reached or the new model
        failed (``failure`` set); the pipeline has already swapped back on a failure.
    """

    __slots__ = (
        "error_new",
        "error_old",
        "failure",
        "is_done",
        "on_done",
        "previous",
        "samples",
        "target",
    )

    def __init__(
        self, previous: Forecaster, samples: int, on_done: Callable[[ShadowGuard], None]
    ) -> None:
        self.previous = previous
        self.target = samples
        self.on_done = on_done
        self.samples = 0
        self.error_new = 0.0
        self.error_old = 0.0
        self.failure: str | None = None
        self.is_done = False

    def record(self, error_new: float, error_old: float) -> None:
        if self.is_done:
            return
        self.samples += 1
        self.error_new += error_new
        self.error_old += error_old
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
        return self.error_new / self.samples if self.samples else None

    @property
    def mae_old(self) -> float | None:
        return self.error_old / self.samples if self.samples else None


MAE_FLOOR = 1e-9
"""Absolute slack on the MAE comparison, so two perfect models do not fail the guard."""


def guard_verdict(guard: ShadowGuard, margin: float) -> str | None:
    """Why the new model must be rolled back after ``guard``, or None to keep it: a
    failure, or a one-step MAE worse than the previous model's by more than ``margin``
    (0.10 = 10 %) on the same samples. The one rule for the OTA manager and the replay."""
    if guard.failure is not None:
        return f"failed in the live guard: {guard.failure}"
    mae_new, mae_old = guard.mae_new, guard.mae_old
    if mae_new is None or mae_old is None:
        return None
    if mae_new > mae_old * (1.0 + margin) + MAE_FLOOR:
        return (
            f"one-step MAE {mae_new:.6g} vs {mae_old:.6g} over {guard.samples} samples: "
            f"worse by more than {margin:.0%}"
        )
    return None
