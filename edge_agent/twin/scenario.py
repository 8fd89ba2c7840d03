"""A what-if scenario: a planned trajectory for each control over a horizon.

Each control's trajectory is a list of segments, each a value held for some minutes
("load 90 % for 30 minutes, then 60 %"). A control the scenario leaves out, and every
control after its last segment, holds its last value. The segments are checked against
the model strictly (known controls, finite values, whole periods, a horizon the model's
uncertainty band covers) and every problem names its field.
"""

from __future__ import annotations

import math
from typing import Annotated

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field

from edge_agent.twin.errors import ScenarioInvalid

FloatArray = npt.NDArray[np.float64]

MAX_SEGMENTS = 64


class Segment(BaseModel):
    """One control value held for ``minutes``."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    value: float
    """In the control's own units (load: share of rated flow, 0..1)."""
    minutes: Annotated[float, Field(gt=0, le=7 * 24 * 60)]


class Scenario(BaseModel):
    """The body of POST /twin/whatif (and of the cloud's /devices/{id}/whatif)."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    controls: Annotated[
        dict[str, Annotated[list[Segment], Field(min_length=1, max_length=MAX_SEGMENTS)]],
        Field(min_length=1),
    ]
    """Control name -> its segments, in time order."""
    horizon_minutes: Annotated[float, Field(gt=0)] | None = None
    """How far to roll forward; default: the longest trajectory."""


def control_plan(
    scenario: Scenario,
    controls: list[str],
    current: FloatArray,
    period_s: float,
    max_steps: int,
    bounds: dict[str, tuple[float, float]] | None = None,
) -> FloatArray:
    """The scenario as (steps, controls) values, one row per period ahead.

    Args:
        controls: the model's controls, in its order.
        current: each control's latest value (held when the scenario leaves it out).
        period_s: the model's period.
        max_steps: the longest roll-forward the model's uncertainty band covers.
        bounds: allowed (low, high) per control; values outside are refused.

    Raises:
        ScenarioInvalid: an unknown control, a value out of bounds, a segment that is
            not a whole number of periods, or a horizon beyond ``max_steps``.
    """
    for name in scenario.controls:
        if name not in controls:
            raise ScenarioInvalid(
                f"controls.{name}", f"not a control of this twin (controls: {controls})"
            )
    period_min = period_s / 60.0
    steps_by_control: dict[str, list[tuple[float, int]]] = {}
    for name, segments in scenario.controls.items():
        low, high = (bounds or {}).get(name, (-math.inf, math.inf))
        planned = []
        for i, seg in enumerate(segments):
            where = f"controls.{name}.{i}"
            if not low <= seg.value <= high:
                raise ScenarioInvalid(f"{where}.value", f"{seg.value} is outside [{low}, {high}]")
            planned.append((seg.value, _whole_periods(seg.minutes, period_min, f"{where}.minutes")))
        steps_by_control[name] = planned
    longest = max(sum(n for _, n in p) for p in steps_by_control.values())
    steps = longest
    if scenario.horizon_minutes is not None:
        steps = _whole_periods(scenario.horizon_minutes, period_min, "horizon_minutes")
    if steps > max_steps:
        raise ScenarioInvalid(
            "horizon_minutes" if scenario.horizon_minutes is not None else "controls",
            f"the scenario runs {steps * period_min:g} minutes; this twin's uncertainty band "
            f"covers {max_steps * period_min:g} minutes",
        )
    plan = np.empty((steps, len(controls)))
    for j, name in enumerate(controls):
        plan[:, j] = current[j]
        row = 0
        for value, n in steps_by_control.get(name, []):
            plan[row : row + n, j] = value
            row += n
        if 0 < row < steps:
            plan[row:, j] = plan[row - 1, j]
    return plan


def _whole_periods(minutes: float, period_min: float, field: str) -> int:
    n = minutes / period_min
    whole = round(n)
    if whole < 1 or abs(n - whole) > 1e-6 * max(1.0, n):
        raise ScenarioInvalid(
            field, f"{minutes:g} minutes is not a whole number of {period_min:g}-minute periods"
        )
    return whole
