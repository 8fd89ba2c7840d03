"""What-if in the cloud for any device: its twin rolled forward from its last synced
summaries (the same int8 model and the same state rule as on the device).

The device does not report a twin of its own yet (twins are not released through OTA),
so the cloud answers with the shipped default twin and says so in ``twin_source``.
The cloud has no copy of the device's alarm rules: the caller passes the limits to
check (``limits``), e.g. the fleet page sends the alarm levels the device reports.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Engine

from cloud_sync.errors import ScenarioRefused, TwinStateMissing
from cloud_sync.twin import list_summaries
from edge_agent.twin.errors import ScenarioInvalid, TwinStateIncomplete
from edge_agent.twin.model import LoadedTwin, load_twin
from edge_agent.twin.scenario import Scenario
from edge_agent.twin.shipped import DEFAULT_TWIN_BUNDLE, default_twin_public_key
from edge_agent.twin.state import IntervalMean, history_from_summaries
from edge_agent.twin.whatif import Limit, WhatIfAnswer, what_if

DEFAULT_BOUNDS = {"load": (0.0, 1.0)}


class LimitIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    rule: Annotated[str, Field(min_length=1, max_length=128)]
    channel: Annotated[str, Field(min_length=1, max_length=64)]
    level: float
    below: bool = False


class CloudScenario(Scenario):
    """A scenario plus the level limits to look for a crossing of."""

    limits: Annotated[list[LimitIn], Field(max_length=64)] = Field(default_factory=list)


class CloudWhatIf(BaseModel):
    device: str
    twin_source: str
    state_end: float
    """UNIX time at which the last synced period used as the state ended."""
    answer: WhatIfAnswer


class TwinCache:
    """The loaded default twin, verified once per process (loading checks golden vectors)."""

    def __init__(self) -> None:
        self._twin: LoadedTwin | None = None

    def default(self) -> LoadedTwin:
        if self._twin is None:
            self._twin = load_twin(DEFAULT_TWIN_BUNDLE, default_twin_public_key())
        return self._twin


def cloud_what_if(
    engine: Engine, device: str, scenario: CloudScenario, cache: TwinCache
) -> CloudWhatIf:
    """Answer ``scenario`` for ``device`` from its synced summaries.

    Raises DeviceNotFound, ScenarioRefused (422), TwinStateMissing (409).
    """
    twin = cache.default()
    w, period = twin.spec.window_steps, twin.period_s
    rows: list[IntervalMean] = []
    for channel in twin.model.channels:
        # enough of the newest intervals for w periods even at 1 s summaries
        for s in list_summaries(engine, device, channel, None, (w + 2) * max(1, round(period))):
            rows.append(IntervalMean(s.channel, s.start, s.interval_s, s.count, s.mean))
    try:
        history, end = history_from_summaries(twin.model.channels, rows, period, w)
    except TwinStateIncomplete as exc:
        raise TwinStateMissing(str(exc)) from None
    limits = [Limit(x.rule, x.channel, x.level, x.below) for x in scenario.limits]
    base = Scenario(controls=scenario.controls, horizon_minutes=scenario.horizon_minutes)
    try:
        answer = what_if(twin, history, base, limits, DEFAULT_BOUNDS)
    except ScenarioInvalid as exc:
        loc = ["body", *exc.field.split(".")]
        raise ScenarioRefused([{"loc": loc, "msg": str(exc), "type": "scenario_invalid"}]) from None
    source = f"shipped default twin {answer.model} (the device reports no twin of its own)"
    return CloudWhatIf(device=device, twin_source=source, state_end=end, answer=answer)
