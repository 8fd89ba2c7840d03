"""The action contract: what every alarm output (log, webhook, GPIO) implements, and
the base of their configs."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from edge_agent.alarms.model import AlarmEvent, Notifiable
from edgetwin_common.config import Name, Strict

if TYPE_CHECKING:
    from edge_agent.pipeline.channel import ChannelPipeline


class Action(Notifiable, Protocol):
    """An alarm output, notified of every raise, acknowledge and clear of the rules that
    name it.

    ``notify`` runs on the pipeline's path: it must return at once and never raise (queue
    the event; do slow work in a task started by ``start``). The event carries a snapshot
    of the alarm after the change: ``event.kind`` (raised / acknowledged / cleared) and
    ``event.alarm.state`` are what an output such as a GPIO lamp or horn switches on.

    Lifecycle: ``start`` once inside the running event loop, before or after the first
    ``notify``; ``stop`` drains what is queued for at most ``timeout_s`` seconds, then
    counts what is left as dropped. ``counters`` holds named counts for /status and
    metrics (every action counts at least what it was given and what it dropped).
    """

    name: str
    counters: dict[str, int]

    def notify(self, event: AlarmEvent) -> None: ...

    async def start(self) -> None: ...

    async def stop(self, timeout_s: float = 5.0) -> None: ...


class ActionConfigBase(Strict):
    """What every action plugin's config has. Each plugin narrows ``type`` to its key
    (``type: Literal["webhook"]``), which discriminates the ``[[actions]]`` union."""

    type: str
    name: Name
    """The name alarm rules list in ``actions`` (unique among actions; an action named
    "log", a log action at warning level, exists without being configured)."""


@dataclass(frozen=True, slots=True)
class ChannelSnapshot:
    """A channel's last processed sample, as an output that publishes state reads it."""

    channel: str
    unit: str | None
    ts: float
    """UNIX seconds of the sample."""
    value: float
    """The processed value (channel units)."""
    score: float | None
    """Its anomaly score (None while the scorer warms up)."""
    horizons: tuple[int, ...]
    """Forecast horizons, in samples ahead."""
    forecast: tuple[float, ...] | None
    """One forecast per horizon made after this sample (None before the window fills)."""


@dataclass(frozen=True, slots=True)
class AgentFeed:
    """What the agent hands, before ``start``, to an action that also publishes its
    state (readings, forecasts, scores), through the action's optional
    ``attach(feed)``: the agent's name, the channels' last samples (read on the event
    loop) and the alarm rules that name the action."""

    agent: str
    channels: Callable[[], list[ChannelSnapshot]]
    rules: Collection[str]


def snapshots(channels: Iterable[ChannelPipeline]) -> list[ChannelSnapshot]:
    """The last sample of each channel that has processed one."""
    return [
        ChannelSnapshot(
            ch.name,
            ch.config.unit,
            ch.last_ts,
            ch.last_value,
            ch.last_score,
            tuple(ch.horizons),
            tuple(ch.forecast.tolist()) if ch.has_forecast else None,
        )
        for ch in channels
        if ch.last_ts is not None and ch.last_value is not None
    ]
