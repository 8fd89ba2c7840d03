"""Readings produced in a worker thread, consumed as an async stream.

Drivers whose I/O blocks (pymodbus' serial client, the kernel's 1-Wire files, gpiozero's
edge callbacks) run in a thread of their own and hand each batch of readings to the
event loop with ``loop.call_soon_threadsafe`` into a bounded ``asyncio.Queue``; so does
pyserial, which has no asyncio API (the serial and tcp line sources). ``thread_stream``
is that plumbing, and ``ThreadedSource`` the ``stream()`` built on it (one consumer at a
time), shared by every such source.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable

from edge_agent.reading import Reading
from edge_agent.sources.base import SourceConfigBase, SourceHealth, SourceState
from edge_agent.sources.errors import SourceBusy
from edgetwin_common.retry import BackoffConfig

__all__ = [
    "OPEN_FAILURES",
    "QUEUE_FULL",
    "RECONNECTS",
    "Emit",
    "ThreadedSource",
    "retrying_text",
    "thread_stream",
]

QUEUE_FULL = "readings_dropped_queue_full"
"""Readings dropped because the consumer fell ``queue_size`` readings behind."""
OPEN_FAILURES = "open_failures"
"""Attempts to open the device, port or connection (or claim the pins) that failed."""
RECONNECTS = "reconnects"
"""Successful opens after the first one."""

Emit = Callable[[list[Reading]], bool]
"""Hands a batch to the consumer; False once nobody listens (the loop closed): stop."""


async def thread_stream(
    name: str,
    run: Callable[[threading.Event, Emit], None],
    counters: Counter[str],
    *,
    queue_size: int = 4096,
    join_timeout_s: float = 5.0,
    interrupt: Callable[[], None] | None = None,
) -> AsyncIterator[Reading]:
    """Run ``run(stop, emit)`` in a daemon thread and yield what it emits, in order,
    until the consumer stops iterating; then set ``stop``, call ``interrupt`` (which
    wakes a blocking call of ``run``, e.g. a port's pending read) and join the thread for
    at most ``join_timeout_s`` (``run`` waits on ``stop``, so it ends within one wait).

    A full queue drops the newest readings and counts them as ``QUEUE_FULL``. An
    exception escaping ``run`` (a bug) is raised to the consumer once the readings
    before it are taken.
    """
    loop = asyncio.get_running_loop()
    # None, after the readings, says the thread failed (the error is in ``failed``).
    queue: asyncio.Queue[Reading | None] = asyncio.Queue(queue_size)
    stop = threading.Event()
    failed: list[BaseException] = []

    def deliver(batch: list[Reading]) -> None:  # runs in the loop thread
        for reading in batch:
            try:
                queue.put_nowait(reading)
            except asyncio.QueueFull:
                counters[QUEUE_FULL] += 1

    def emit(batch: list[Reading]) -> bool:
        if not batch:
            return not stop.is_set()
        try:
            loop.call_soon_threadsafe(deliver, batch)
        except RuntimeError:  # the loop is closed: nobody is listening any more
            return False
        return True

    def end() -> None:  # runs in the loop thread
        while True:
            try:
                queue.put_nowait(None)
                return
            except asyncio.QueueFull:
                queue.get_nowait()  # the failure must get through: drop the oldest
                counters[QUEUE_FULL] += 1

    def supervised() -> None:
        try:
            run(stop, emit)
        except Exception as exc:
            # A bug, not a device problem (those are counted inside run): end the stream
            # with the error so the agent's supervisor restarts it (a bounded number of
            # times) instead of it hanging silent.
            failed.append(exc)
            with contextlib.suppress(RuntimeError):  # the loop may be closed already
                loop.call_soon_threadsafe(end)

    thread = threading.Thread(target=supervised, name=f"source-{name}", daemon=True)
    thread.start()
    try:
        while True:
            reading = await queue.get()
            if reading is None:
                raise failed[0]
            yield reading
    finally:
        stop.set()
        if interrupt is not None:
            interrupt()
        # Joined (bounded) so that a following stream() never races this thread for the
        # device; synchronous because this also runs while the loop shuts down.
        thread.join(join_timeout_s)


class ThreadedSource:
    """A source whose ``_run(stop, emit)`` works in a thread of its own: ``stream()``,
    ``channels()`` (its config's) and the health it reports, shared.

    One consumer at a time: a second concurrent ``stream()`` raises ``SourceBusy`` (two
    threads must never share a device). Subclasses call ``__init__`` with their config,
    their counters and queue size, write ``_run`` and the texts of ``_change``'s log lines,
    and may widen ``_join_timeout_s`` when one step of ``_run`` cannot be interrupted, or
    override ``_interrupt`` to wake a step that can. Logs go to the subclass's module's
    logger.

    counters: every counter the source keeps (more may be added in the subclass's
        ``__init__``, never later: /status iterates them from another thread).
    clock: UNIX seconds, for the time of state changes (and the readings' stamps).
    """

    def __init__(
        self,
        config: SourceConfigBase,
        counters: Iterable[str],
        *,
        clock: Callable[[], float],
        queue_size: int,
    ) -> None:
        self.config = config
        self.name = config.name
        self.health = SourceHealth()
        self.health.counters.update(dict.fromkeys(counters, 0))
        self._clock = clock
        self._log = logging.getLogger(type(self).__module__)
        self._logged_error: str | None = None
        self._queue_size = queue_size
        self._streaming = threading.Lock()

    def channels(self) -> list[str]:
        return self.config.channel_names()

    def _change(self, state: SourceState, error: str | None) -> None:
        """Record a state (and error); log a change of state, or a new error text, once."""
        if self.health.set_state(state, self._clock(), error):
            if state is SourceState.CONNECTED:
                self._log.info("source %s: %s", self.name, self._connected_text())
            else:
                self._log.warning("source %s: %s", self.name, self._disconnected_text(error))
            self._logged_error = error
        elif error is not None and error != self._logged_error:
            self._log.info("source %s: still %s: %s", self.name, state.value, error)
            self._logged_error = error

    def _connected_text(self) -> str:
        """The log line's text when the source connects."""
        return "connected"

    def _disconnected_text(self, error: str | None) -> str:
        """The log line's text when it loses its device (``error`` says why)."""
        return f"disconnected ({error})"

    def _join_timeout_s(self) -> float:
        return 5.0

    def _interrupt(self) -> None:
        """Called (from the loop's thread) once ``stop`` is set: nothing to wake here."""

    def _run(self, stop: threading.Event, emit: Emit) -> None:
        raise NotImplementedError

    async def stream(self) -> AsyncIterator[Reading]:
        if not self._streaming.acquire(blocking=False):
            raise SourceBusy(f"source {self.name!r} is already streaming")
        try:
            async for reading in thread_stream(
                self.name,
                self._run,
                self.health.counters,
                queue_size=self._queue_size,
                join_timeout_s=self._join_timeout_s(),
                interrupt=self._interrupt,
            ):
                yield reading
        finally:
            self._streaming.release()


def retrying_text(error: str | None, backoff: BackoffConfig) -> str:
    """The log text of a lost device that is tried again with ``backoff``'s waits."""
    return f"disconnected ({error}); retrying every {backoff.initial_s:.3g}..{backoff.max_s:.3g} s"
