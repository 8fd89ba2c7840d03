"""Why an alarm was raised: the rule, what tripped it, the anomaly score's parts, the
channel that contributed most and the recent window with its forecast.

Built once, when an alarm is raised (never per sample): the engine asks the channel's
``ReasonSource`` for the score's parts and a copy of its recent window at that moment.
The reason then travels with the alarm everywhere it is shown: the store, /alarms, the
status page, the actions' payloads, the batch to the cloud (``AlarmReasonRecord`` of
edgetwin_contracts/batch.py bounds its sizes) and the cloud's API and fleet page.
docs/alarms.md, "Why an alarm was raised".
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from edgetwin_contracts.batch import MAX_REASON_NAME, MAX_REASON_PARTS


@dataclass(frozen=True, slots=True)
class WindowSnapshot:
    """The channel's last model steps before the alarm and the forecast made at the last
    of them. Times are UNIX seconds; values and forecasts are in channel units."""

    ts: tuple[float, ...]
    """Each step's time, oldest first (at most MAX_WINDOW_POINTS)."""
    values: tuple[float, ...]
    """Each step's value (the reading, or the period's mean at a model period)."""
    forecast_ts: float | None = None
    """When the forecast was made (the last model step); None: no forecast yet."""
    horizons_s: tuple[float, ...] = ()
    """How far ahead each forecast value is, seconds."""
    forecast: tuple[float, ...] = ()
    """One value per horizon."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "ts": list(self.ts),
            "values": list(self.values),
            "forecast_ts": self.forecast_ts,
            "horizons_s": list(self.horizons_s),
            "forecast": list(self.forecast),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> WindowSnapshot:
        return cls(
            ts=tuple(data["ts"]),
            values=tuple(data["values"]),
            forecast_ts=data.get("forecast_ts"),
            horizons_s=tuple(data.get("horizons_s", ())),
            forecast=tuple(data.get("forecast", ())),
        )


@dataclass(frozen=True, slots=True)
class AlarmReason:
    """Why one alarm was raised."""

    rule: str
    """The rule's name (for the agent's own alarms: the internal alarm's name)."""
    trigger: str
    """What tripped it: "value", "forecast", "score", "rate", "health" or "internal"."""
    top_channel: str
    """The channel that contributed most: the alarm's own for a single-channel rule."""
    value: float | None = None
    """The reading, forecast, score or |rate| that tripped it (None: health, internal)."""
    limit: float | None = None
    """The rule's set level (None: health, internal)."""
    direction: str | None = None
    """"above" or "below" the limit (None without a limit)."""
    parts: Mapping[str, float] = field(default_factory=dict)
    """The anomaly score's parts at that moment, e.g. residual, spread, likelihood,
    novelty, score (empty while the scorer is not warm)."""
    conditions: tuple[str, ...] = ()
    """Health rules: the conditions that held (stale, stuck, disconnected)."""
    window: WindowSnapshot | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "trigger": self.trigger,
            "top_channel": self.top_channel,
            "value": self.value,
            "limit": self.limit,
            "direction": self.direction,
            "parts": dict(self.parts),
            "conditions": list(self.conditions),
            "window": None if self.window is None else self.window.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AlarmReason:
        """The reason of ``to_dict()`` (as stored by this device)."""
        window = data.get("window")
        return cls(
            rule=data["rule"],
            trigger=data["trigger"],
            top_channel=data["top_channel"],
            value=data.get("value"),
            limit=data.get("limit"),
            direction=data.get("direction"),
            parts=dict(data.get("parts", {})),
            conditions=tuple(data.get("conditions", ())),
            window=None if window is None else WindowSnapshot.from_dict(window),
        )


class ReasonSource(Protocol):
    """What the engine asks of a channel when one of its alarms is raised (the channel
    pipeline): called once per raise, on the event loop."""

    def score_parts(self) -> Mapping[str, float]:
        """The last anomaly score's parts (empty when there is none)."""
        ...

    def window_snapshot(self) -> WindowSnapshot | None:
        """A copy of the recent window and the latest forecast (None: no step yet)."""
        ...


def bounded_parts(parts: Mapping[str, float]) -> dict[str, float]:
    """The parts the batch contract takes: finite, named in 1 to MAX_REASON_NAME
    characters, at most MAX_REASON_PARTS of them (a detector may report more)."""
    out: dict[str, float] = {}
    for name, value in parts.items():
        if len(out) == MAX_REASON_PARTS:
            break
        v = float(value)
        if math.isfinite(v) and 0 < len(name) <= MAX_REASON_NAME:
            out[name] = v
    return out


def finite_or_none(value: float | None) -> float | None:
    """``value`` when finite, else None: a reason carries only numbers JSON and the batch
    contract take (a rule's level may be written ``inf`` in TOML)."""
    return value if value is not None and math.isfinite(value) else None
