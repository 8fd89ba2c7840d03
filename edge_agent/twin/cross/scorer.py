"""One channel's cross-channel surprise: the twin's one-period misses scored with the
detector's own stages (``ResidualScorer``: the miss over its typical size;
``AnomalyLikelihood``: the short-term mean of those against their long-run
distribution, as -log10 of a probability), plus habituation as the ensemble does it.
One ``score`` per twin period: the cost is a few dozen float operations a minute."""

from __future__ import annotations

import math

from edge_agent.anomaly.likelihood import AnomalyLikelihood
from edge_agent.anomaly.residual import ResidualScorer, ScoreSettings
from edge_agent.twin.cross.config import CrossConfig


class CrossScorer:
    """Scores one channel's period means against the twin's predictions of them.

    ``score`` returns None while warming up (``warmup`` + ``likelihood_warmup``
    periods), then the surprise (>= 0, after habituation). Not thread-safe.
    """

    __slots__ = (
        "_event_habit",
        "_events",
        "_habit_half_life",
        "_habit_weight",
        "_in_event",
        "_level",
        "_likelihood",
        "_misses",
        "_pos",
        "_residual",
        "_steps",
        "raw",
        "unexplained",
    )

    def __init__(self, config: CrossConfig) -> None:
        settings = ScoreSettings(alpha=config.alpha, warmup=config.warmup, clip=config.clip)
        self._residual = ResidualScorer(settings)
        self._likelihood = AnomalyLikelihood(
            config.short_window, config.likelihood_alpha, config.likelihood_warmup
        )
        self._misses = [0.0] * config.explain_periods
        self._pos = 0
        self._level = config.event_level
        self._habit_weight = config.habit_weight
        self._habit_half_life = float(config.habit_half_life)
        self._events: list[int] = []
        """The steps at which past events began (the habit; pruned once negligible)."""
        self._steps = 0
        self._in_event = False
        """An event is on: from a raw surprise >= event_level until it falls below half."""
        self._event_habit = 0.0
        """The habit of the events before the current one."""
        self.raw = 0.0
        """The last surprise before habituation."""
        self.unexplained = 0.0
        """Sum of (actual - predicted) over the last explain_periods periods, channel units."""

    @property
    def is_warm(self) -> bool:
        return self._likelihood.is_warm

    @property
    def warmup_periods(self) -> int:
        return self._residual._warmup + self._likelihood._warmup

    def habit(self) -> float:
        """The recent events, each weighing 0.5 ** (age / habit_half_life)."""
        steps, half = self._steps, self._habit_half_life
        return math.fsum(0.5 ** ((steps - at) / half) for at in self._events)

    def score(self, actual: float, predicted: float) -> float | None:
        """Score one period's mean ``actual`` against the twin's ``predicted`` (channel
        units), then learn from it. Raises ValueError when either is not finite."""
        miss = actual - predicted
        if not math.isfinite(miss):
            raise ValueError(f"non-finite period mean or prediction: {actual!r}, {predicted!r}")
        misses, pos = self._misses, self._pos
        misses[pos] = miss
        self._pos = pos + 1 if pos + 1 < len(misses) else 0
        # Summed afresh (explain_periods floats, once a period): a running sum would
        # drift by rounding over months.
        self.unexplained = unexplained = math.fsum(misses)
        # What is scored: the unexplained move over explain_periods against its typical
        # size. Noise sums like sqrt(n), a lasting unexplained heat like n: a bearing
        # hot for its load stands out of the sum long before it does of one period.
        ratio = self._residual.score(unexplained, 0.0)
        if not self._residual.is_warm:
            return None
        was_warm = self._likelihood.is_warm
        raw = self._likelihood.score(math.log1p(ratio))
        if not was_warm:
            return None
        self._steps += 1
        self.raw = raw
        if self._in_event and raw < 0.5 * self._level:
            self._in_event = False
        if not self._in_event and raw >= self._level:
            # A new event: lowered by the events before it, never by itself.
            cutoff = self._steps - 20 * self._habit_half_life  # weight below 1e-6
            self._events = [at for at in self._events if at > cutoff]
            self._event_habit = self.habit()
            self._events.append(self._steps)
            self._in_event = True
        habit = self._event_habit if self._in_event else self.habit()
        surprise = raw - self._habit_weight * habit if habit else raw
        return surprise if surprise > 0.0 else 0.0
