"""Rules on a predicted crossing: "forecast_above", "forecast_below"."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Literal

import numpy as np
import numpy.typing as npt
from pydantic import Field

from edge_agent.alarms.rules.base import Forecast, LevelCheck, LevelRule
from edgetwin_common.durations import duration_text
from edgetwin_common.errors import ConfigProblem


class ForecastRule(LevelRule):
    """A predicted crossing: raised when any forecast up to ``within_samples`` ahead
    is beyond ``set`` (e.g. "bearing above 85 °C within the horizon"). m is the highest
    (forecast_above) or lowest (forecast_below) of those forecasts, channel units; the
    rule keeps its state while the window fills (no forecast yet). Horizons count model
    steps (the model's period, else the channel's); the alarm's message states the
    horizon in time ("within 16 min") when the step period is known."""

    type: Literal["forecast_above", "forecast_below"]
    """The rule type (formerly `kind`)."""
    within_samples: Annotated[int, Field(ge=1)] | None = None
    """Look at horizons up to this many samples ahead; None: every horizon of the model."""

    def horizon_indices(self, horizons: Sequence[int]) -> list[int]:
        """Positions in ``horizons`` (samples ahead, any order) that the rule looks at."""
        limit = self.within_samples
        return [i for i, h in enumerate(horizons) if limit is None or h <= limit]

    def problems(self, horizons: Sequence[int]) -> list[ConfigProblem]:
        if self.horizon_indices(horizons):
            return []
        shown = ", ".join(map(str, horizons)) or "none"
        message = f"selects none of the model's horizons ({shown})"
        return [ConfigProblem("within_samples", self.within_samples, message)]

    def check(self, horizons: Sequence[int]) -> ForecastCheck:
        picked = self.horizon_indices(horizons)
        if not picked:
            raise ValueError(self.problems(horizons)[0].message)
        selection: slice | npt.NDArray[np.intp]
        if picked == list(range(picked[0], picked[-1] + 1)):
            selection = slice(picked[0], picked[-1] + 1)  # a view: no copy per sample
        else:
            selection = np.array(picked, dtype=np.intp)
        return ForecastCheck(self, selection, max(horizons[i] for i in picked))


class ForecastCheck(LevelCheck):
    __slots__ = ("_longest", "_selection", "_step_s")
    label = " forecast"

    def __init__(
        self, rule: ForecastRule, selection: slice | npt.NDArray[np.intp], longest: int
    ) -> None:
        super().__init__(rule)
        self._selection = selection
        self._longest = longest
        """The farthest horizon the rule looks at, model steps."""
        self._step_s: float | None = None

    def use_step_period(self, step_s: float | None) -> None:
        self._step_s = step_s

    def measure(
        self, value: float, forecast: Forecast | None, score: float | None, rate: float | None
    ) -> float | None:
        if forecast is None:
            return None
        # Builtin max/min over a few Python floats: a numpy reduction costs ~3 µs of
        # dispatch, on every sample of the channel. Forecasts are finite (the forecaster
        # refuses non-finite windows), so NaN propagation cannot differ.
        selected: list[float] = forecast[self._selection].tolist()
        return min(selected) if self._sign < 0 else max(selected)

    def describe(self, channel: str) -> str:
        if self._step_s is not None:
            within = f" within {duration_text(self._longest * self._step_s)}"
        else:
            within = f" within {self._longest} samples"
        return super().describe(channel) + within
