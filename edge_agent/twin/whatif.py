"""What-if: roll the twin forward under a scenario and judge the paths.

The answer holds each output channel's predicted path with an uncertainty band (the
bundle's held-out roll-forward residual std at each step, times ``band_sigmas``) and
the first step at which any path crosses a configured level limit (a value_* or
forecast_* alarm rule's ``set``), with when and by which rule.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel

from edge_agent.alarms.rules.base import LevelRule, RuleConfig
from edge_agent.twin.errors import TwinStateIncomplete
from edge_agent.twin.model import LoadedTwin
from edge_agent.twin.scenario import Scenario, control_plan

FloatArray = npt.NDArray[np.float64]

BAND_SIGMAS = 2.0
"""The band is the path +- 2 residual std (about 95 % of held-out errors)."""


@dataclass(frozen=True, slots=True)
class Limit:
    """A level a channel should stay on one side of."""

    rule: str
    channel: str
    level: float
    below: bool
    """True: the limit is crossed at or below ``level`` (a *_below rule)."""


def limits_from_rules(rules: Iterable[RuleConfig]) -> list[Limit]:
    """The level limits of value_* and forecast_* rules (the ones a predicted path can
    cross); other rules (rate, score, health) have no level on the channel's scale."""
    found = []
    for rule in rules:
        if isinstance(rule, LevelRule) and rule.type.startswith(("value_", "forecast_")):
            found.append(Limit(rule.name, rule.channel, float(rule.set), rule.is_below))
    return found


class ChannelPath(BaseModel):
    channel: str
    values: list[float]
    lower: list[float]
    upper: list[float]


class Crossing(BaseModel):
    rule: str
    channel: str
    limit: float
    below: bool
    step: int
    """Periods ahead (1 = the first predicted period)."""
    after_s: float
    """Seconds from now."""
    value: float


class WhatIfAnswer(BaseModel):
    model: str
    """The twin bundle's name and version."""
    period_s: float
    steps: int
    after_s: list[float]
    """Seconds from now of each step."""
    controls: dict[str, list[float]]
    channels: list[ChannelPath]
    band_sigmas: float
    crossing: Crossing | None
    """The first limit crossing of any path (None: every path stays inside)."""


def what_if(
    twin: LoadedTwin,
    history: FloatArray,
    scenario: Scenario,
    limits: Sequence[Limit] = (),
    bounds: dict[str, tuple[float, float]] | None = None,
) -> WhatIfAnswer:
    """Answer ``scenario`` from ``history`` ((window_steps, channels) in channel units,
    columns in the twin's channel order, the last row the latest period).

    Raises ScenarioInvalid (the scenario) or TwinStateIncomplete (the history).
    """
    spec = twin.spec
    model = twin.model
    n_out = len(model.outputs)
    plan = control_plan(
        scenario, model.controls, history[-1, n_out:], twin.period_s, spec.horizon_steps, bounds
    )
    model.load_state(history)
    path = model.roll(plan)
    if not np.all(np.isfinite(path)):
        # a state near the float range's edge: no path can be told, and none is made up
        raise TwinStateIncomplete("the state is too far outside the twin's range to roll forward")
    steps = len(plan)
    after = [twin.period_s * (i + 1) for i in range(steps)]
    channels = []
    for j, name in enumerate(model.outputs):
        band = BAND_SIGMAS * np.asarray(spec.residual_std[name][:steps])
        values = path[:, j]
        channels.append(
            ChannelPath(
                channel=name,
                values=values.tolist(),
                lower=(values - band).tolist(),
                upper=(values + band).tolist(),
            )
        )
    info = twin.manifest.model
    return WhatIfAnswer(
        model=f"{info.name} {info.version}",
        period_s=twin.period_s,
        steps=steps,
        after_s=after,
        controls={name: plan[:, k].tolist() for k, name in enumerate(model.controls)},
        channels=channels,
        band_sigmas=BAND_SIGMAS,
        crossing=first_crossing(model.outputs, path, limits, twin.period_s),
    )


def first_crossing(
    outputs: list[str], path: FloatArray, limits: Sequence[Limit], period_s: float
) -> Crossing | None:
    """The earliest step at which a path reaches a limit (ties: the first limit listed)."""
    best: Crossing | None = None
    for limit in limits:
        channels = outputs if limit.channel == "*" else [limit.channel]
        for name in channels:
            if name not in outputs:
                continue
            values = path[:, outputs.index(name)]
            hits = values <= limit.level if limit.below else values >= limit.level
            if not hits.any():
                continue
            i = int(np.argmax(hits))
            if best is None or i + 1 < best.step:
                best = Crossing(
                    rule=limit.rule,
                    channel=name,
                    limit=limit.level,
                    below=limit.below,
                    step=i + 1,
                    after_s=period_s * (i + 1),
                    value=float(values[i]),
                )
    return best


def history_from_means(twin: LoadedTwin, means: dict[str, Sequence[float]]) -> FloatArray:
    """The (window_steps, channels) history from each channel's latest period means.

    Raises TwinStateIncomplete naming the channels missing or too short.
    """
    w = twin.spec.window_steps
    missing = [c for c in twin.model.channels if len(means.get(c, ())) < w]
    if missing:
        raise TwinStateIncomplete(
            f"the twin needs the last {w} periods of {missing}; "
            "per-channel forecasts continue without it"
        )
    return np.array([list(means[c])[-w:] for c in twin.model.channels]).T.copy()
