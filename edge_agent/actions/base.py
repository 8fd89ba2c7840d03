"""The action contract: what every alarm output (log, webhook, GPIO) implements, and
the base of their configs."""

from __future__ import annotations

import time
from collections.abc import Callable
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


class DeliveryHealth:
    """Whether an action's outputs get through: the last success and the last error
    (UNIX seconds, wall clock: the operator compares them with now). Kept by every action
    that can fail (a webhook, a GPIO output); read by /status, /metrics, the status page
    and ``edge-agent doctor`` (through the agent's /status)."""

    __slots__ = ("_clock", "last_error", "last_error_at", "last_success")

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self.last_success: float | None = None
        self.last_error: str | None = None
        """The last failure, kept after a recovery (compare last_error_at with last_success)."""
        self.last_error_at: float | None = None

    def succeeded(self) -> None:
        self.last_success = self._clock()

    def failed(self, error: str) -> None:
        self.last_error = error
        self.last_error_at = self._clock()

    @property
    def is_failing(self) -> bool:
        """True when the last outcome was an error (no success since)."""
        if self.last_error_at is None:
            return False
        return self.last_success is None or self.last_error_at >= self.last_success
