"""Whether an action's outputs get through (``DeliveryHealth``), kept by each action
that can fail and read by /status, /metrics, the status page and ``edge-agent doctor``."""

from __future__ import annotations

import time
from collections.abc import Callable


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
