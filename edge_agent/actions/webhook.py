"""The "webhook" action: HTTP POST of each alarm event as JSON, retried with backoff.

``notify`` only appends to a bounded in-memory queue (oldest dropped and counted when
full) and wakes the sender task; it never waits for the network. Up to ``concurrency``
alarms are delivered at once, so one alarm's retries (about 17 s with the default
backoff when the receiver is down) never hold back the events of the others; the
events of one alarm go one at a time, in order (raised before cleared). An event is
forgotten only when the receiver accepted it (2xx) or when the sender gave up on it
(counted as failed):

- retried: connection errors, timeouts, HTTP 5xx and 429, up to ``retries`` more
  attempts, the n-th after ``backoff.initial_s · 2^(n-1)`` plus up to
  ``backoff.initial_s`` of random jitter, capped at ``backoff.max_s`` (a Retry-After in
  seconds is honoured, capped too);
- not retried: other 4xx and redirects (the receiver refused the event).

Body: ``AlarmEvent.to_dict()``. Header ``Idempotency-Key: <alarm id>-<event kind>`` lets a
receiver drop the duplicate a retry after a lost response can produce.
Counters: queued, sent, retried (attempts after the first), failed, dropped; ``health``
keeps the last success and the last error (with its time) for /status.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import deque
from typing import Annotated, Any, Literal

import httpx
from pydantic import Field, HttpUrl, ValidationInfo, model_validator
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt

from edge_agent.actions.base import ActionConfigBase
from edge_agent.actions.errors import DeliveryFailed, DeliveryRejected
from edge_agent.actions.health import DeliveryHealth
from edge_agent.alarms.model import AlarmEvent
from edgetwin_common.plugins import Plugin
from edgetwin_common.retry import Backoff, BackoffConfig, Jitter, complete_backoff_table

__all__ = ["PLUGIN", "WebhookAction", "WebhookActionConfig"]

log = logging.getLogger(__name__)


class WebhookActionConfig(ActionConfigBase):
    """HTTP POST of the alarm event as JSON, retried with exponential backoff."""

    type: Literal["webhook"]
    url: HttpUrl
    timeout_s: Annotated[float, Field(gt=0, le=120)] = 5.0
    retries: Annotated[int, Field(ge=0, le=100)] = 5
    """Attempts after the first for one event, before it is given up (counted failed)."""
    backoff: BackoffConfig = BackoffConfig(initial_s=0.5, max_s=30.0)
    """Waits between attempts, plus up to initial_s of random jitter (a receiver's
    Retry-After in seconds is honoured, capped at max_s too)."""
    headers: dict[str, str] = Field(default_factory=dict)
    queue_max: Annotated[int, Field(ge=1)] = 1000
    """Events waiting to be sent; past it the oldest is dropped and counted."""
    concurrency: Annotated[int, Field(ge=1, le=64)] = 4
    """Alarms delivered at once (each with its own retries); the events of one alarm
    still go one at a time, in order."""

    @model_validator(mode="before")
    @classmethod
    def _backoff_table(cls, data: Any, info: ValidationInfo) -> Any:
        renamed = {"backoff_initial_s": ("initial_s",), "backoff_max_s": ("max_s",)}
        return complete_backoff_table(cls, data, info, renamed, "actions")


_TRANSIENT = (DeliveryFailed, httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)
"""Worth another attempt: the receiver may take the event soon."""


def _is_transient(exc: BaseException) -> bool:
    return isinstance(exc, _TRANSIENT)


def _retry_after(response: httpx.Response) -> float | None:
    raw = response.headers.get("retry-after")
    if raw is None:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        return None  # an HTTP date: use our own backoff


class WebhookAction:
    """Posts alarm events to ``config.url``. See the module docstring for the behaviour."""

    def __init__(self, config: WebhookActionConfig) -> None:
        self.name = config.name
        self.config = config
        self.counters: dict[str, int] = {
            "queued": 0,
            "sent": 0,
            "retried": 0,
            "failed": 0,
            "dropped": 0,
        }
        self.health = DeliveryHealth()
        self._url = str(config.url)
        self._queue: deque[AlarmEvent] = deque()
        self._lock = threading.Lock()
        """Guards ``_queue``: notify may come from another thread while the sender scans."""
        self._in_flight: dict[int, AlarmEvent] = {}
        """Being sent, by alarm id: at most one event per alarm, at most ``concurrency``."""
        self._senders: set[asyncio.Task[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wakeup: asyncio.Event | None = None
        self._worker: asyncio.Task[None] | None = None
        self._client: httpx.AsyncClient | None = None
        self._closing = False
        self._backoff = Backoff(config.backoff, Jitter.ADDED)

    @property
    def pending(self) -> int:
        """Events queued or being sent (the queue depth /status reports)."""
        return len(self._queue) + len(self._in_flight)

    def notify(self, event: AlarmEvent) -> None:
        """Queue the event (dropping the oldest when ``queue_max`` are waiting) and wake the
        sender. Returns at once; callable before ``start`` and from any thread."""
        with self._lock:
            if len(self._queue) >= self.config.queue_max:
                self._queue.popleft()
                self.counters["dropped"] += 1
            self._queue.append(event)
            self.counters["queued"] += 1
        loop, wakeup = self._loop, self._wakeup
        if loop is not None and wakeup is not None and not loop.is_closed():
            loop.call_soon_threadsafe(wakeup.set)

    async def start(self) -> None:
        """Open the HTTP client and start the sender task (in the running loop)."""
        if self._worker is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._wakeup = asyncio.Event()
        self._wakeup.set()  # send what was queued before start
        self._closing = False
        self._client = httpx.AsyncClient(timeout=self.config.timeout_s, headers=self.config.headers)
        self._worker = asyncio.create_task(self._run(), name=f"webhook:{self.name}")
        self._worker.add_done_callback(self._on_worker_done)

    async def stop(self, timeout_s: float = 5.0) -> None:
        """Send what is queued for at most ``timeout_s`` seconds, then cancel; events still
        unsent are counted as dropped. Closes the HTTP client."""
        worker = self._worker
        if worker is None:
            return
        self._closing = True
        if self._wakeup is not None:
            self._wakeup.set()
        await asyncio.wait({worker}, timeout=timeout_s)
        left = self.pending
        for task in (worker, *self._senders):
            task.cancel()
        await asyncio.gather(worker, *self._senders, return_exceptions=True)
        if left:
            self.counters["dropped"] += left
            log.warning("webhook %s: stopped with %d event(s) unsent (dropped)", self.name, left)
        self._queue.clear()
        self._in_flight.clear()
        self._worker = None
        self._loop = None
        self._wakeup = None
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def _run(self) -> None:
        wakeup = self._wakeup
        assert wakeup is not None
        while True:
            await wakeup.wait()
            wakeup.clear()
            while len(self._in_flight) < self.config.concurrency:
                event = self._next_event()
                if event is None:
                    break
                self._in_flight[event.alarm.id] = event  # forgotten once delivered or given up
                task = asyncio.create_task(self._send(event), name=f"webhook:{self.name}:send")
                self._senders.add(task)
                task.add_done_callback(self._on_sender_done)
            if self._closing and not self._queue and not self._in_flight:
                return

    def _next_event(self) -> AlarmEvent | None:
        """The oldest queued event of an alarm with nothing in flight (per-alarm order)."""
        with self._lock:
            for i, event in enumerate(self._queue):
                if event.alarm.id not in self._in_flight:
                    del self._queue[i]
                    return event
        return None

    async def _send(self, event: AlarmEvent) -> None:
        try:
            await self._deliver(event)
        finally:
            self._in_flight.pop(event.alarm.id, None)
            if self._wakeup is not None:
                self._wakeup.set()

    async def _deliver(self, event: AlarmEvent) -> None:
        body = event.to_dict()
        headers = {"Idempotency-Key": f"{event.alarm.id}-{event.kind.value}"}
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.config.retries + 1),
            wait=self._wait,
            retry=retry_if_exception(_is_transient),
            before_sleep=self._count_retry,
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    await self._post(body, headers)
        except (DeliveryFailed, DeliveryRejected, httpx.HTTPError) as exc:
            self.counters["failed"] += 1
            self.health.failed(f"alarm {event.alarm.id} {event.kind.value}: {_describe(exc)}")
            log.warning(
                "webhook %s: gave up on alarm %d %s after %d attempt(s): %s",
                self.name,
                event.alarm.id,
                event.kind.value,
                retrying.statistics.get("attempt_number", 1),
                exc,
            )
        else:
            self.counters["sent"] += 1
            self.health.succeeded()

    async def _post(self, body: dict[str, Any], headers: dict[str, str]) -> None:
        assert self._client is not None
        response = await self._client.post(self._url, json=body, headers=headers)
        status = response.status_code
        if response.is_success:
            return
        if status == 429 or status >= 500:
            raise DeliveryFailed(f"HTTP {status}", _retry_after(response))
        raise DeliveryRejected(f"HTTP {status}")

    def _wait(self, state: RetryCallState) -> float:
        delay = self._backoff.delay(state.attempt_number)
        exc = state.outcome.exception() if state.outcome is not None else None
        if isinstance(exc, DeliveryFailed) and exc.retry_after_s is not None:
            delay = max(delay, exc.retry_after_s)
        return min(delay, self.config.backoff.max_s)

    def _count_retry(self, state: RetryCallState) -> None:
        self.counters["retried"] += 1
        exc = state.outcome.exception() if state.outcome is not None else None
        if exc is not None:
            self.health.failed(_describe(exc))
        log.debug(
            "webhook %s: attempt %d failed (%s), retrying", self.name, state.attempt_number, exc
        )

    def _on_worker_done(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error(
                "webhook %s: sender stopped by an error; events now only queue and drop",
                self.name,
                exc_info=task.exception(),
            )

    def _on_sender_done(self, task: asyncio.Task[None]) -> None:
        self._senders.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error(
                "webhook %s: a delivery failed unexpectedly", self.name, exc_info=task.exception()
            )


def _describe(exc: BaseException) -> str:
    """ "ConnectError: [Errno 111] Connection refused": the class says what kind."""
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


PLUGIN = Plugin(WebhookActionConfig, WebhookAction)
