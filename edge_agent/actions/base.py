"""The action contract: what every alarm output (log, webhook, GPIO) implements, and
the base of their configs."""

from __future__ import annotations

from typing import Protocol

from edge_agent.alarms.model import AlarmEvent, Notifiable
from edgetwin_common.config import Name, Strict


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
