"""The systemd watchdog, fed only while the pipeline makes progress.

systemd sets ``WATCHDOG_USEC`` (from ``WatchdogSec=``) and restarts the service when no
``WATCHDOG=1`` arrives in that time. The pings come from a task on the agent's event
loop, so a blocked loop stops them by itself; beyond that, they also stop when a
connected source has delivered no reading for ``stall_after_s``: a pipeline that is
stuck while its device is there. A source that is disconnected, still starting or
finished is not a stall: it reconnects by itself (and its health alarm says so), and a
restart would not bring the device back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from edge_agent.sources.base import SourceState
from edgetwin_common.notify import Notifier

log = logging.getLogger(__name__)


class Progress(StrEnum):
    FLOWING = "flowing"
    """Samples arrived within stall_after_s."""
    WAITING = "waiting"
    """No source is connected (starting, disconnected or finished): nothing to stall."""
    STALLED = "stalled"
    """A source is connected, yet no sample arrived for stall_after_s."""


@dataclass(slots=True)
class ProgressMonitor:
    """Judges progress from the agent's sample counter and its sources' states.

    ``observe`` is called with a monotonic time; progress is measured on that clock so
    a wall-clock step (NTP at boot) cannot fake or hide a stall.
    """

    stall_after_s: float
    _samples: int = -1
    _last_progress: float | None = None

    def observe(self, now: float, samples: int, states: list[SourceState]) -> Progress:
        if self._last_progress is None or samples != self._samples:
            self._samples = samples
            self._last_progress = now
        if not any(s is SourceState.CONNECTED for s in states):
            # Waiting counts as progress from here on: a source that connects again gets
            # the full stall_after_s to deliver its first reading.
            self._last_progress = now
            return Progress.WAITING
        if now - self._last_progress <= self.stall_after_s:
            return Progress.FLOWING
        return Progress.STALLED


async def feed_watchdog(
    notifier: Notifier,
    period_s: float,
    monitor: ProgressMonitor,
    samples: Callable[[], int],
    states: Callable[[], list[SourceState]],
    stop: asyncio.Event,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """Every ``period_s`` until ``stop``: ping while progressing, and say in STATUS
    (``systemctl status``) when it stalls or recovers."""
    last = Progress.FLOWING
    while not stop.is_set():
        progress = monitor.observe(clock(), samples(), states())
        if progress is not Progress.STALLED:
            notifier.watchdog()
        if progress is not last:
            if progress is Progress.STALLED:
                log.error(
                    "pipeline stalled: no reading for %.0f s from a connected source; "
                    "watchdog pings stop, systemd will restart the agent",
                    monitor.stall_after_s,
                )
            elif last is Progress.STALLED:
                log.info("pipeline making progress again")
            notifier.status(f"pipeline {progress.value}, {samples()} readings")
            last = progress
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), period_s)
