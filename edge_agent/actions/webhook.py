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
import time
from collections import deque
from typing import Annotated, Any, Literal

import httpx
from pydantic import Field, HttpUrl, ValidationInfo, model_validator
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt

from edge_agent.actions.base import ActionConfigBase
from edge_agent.actions.control import ControlGate, ControlRange
from edge_agent.actions.errors import ControlWriteFailed, DeliveryFailed, DeliveryRejected
from edge_agent.actions.health import DeliveryHealth
from edge_agent.alarms.model import AlarmEvent
from edgetwin_common.plugins import Plugin
from edgetwin_common.retry import Backoff, BackoffConfig, Jitter, complete_backoff_table

__all__ = ["PLUGIN", "WebhookAction", "WebhookActionConfig", "WebhookControl"]

log = logging.getLogger(__name__)


class WebhookControl(ControlRange):
    """The webhook as a control output: the range it accepts, its safe value (held
    while an alarm naming the action is active) and where the values go."""

    url: HttpUrl | None = None
    """Where values are POSTed; default: the webhook's ``url``."""


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
    control: WebhookControl | None = None
    """Also a control output (the advisor's ``output``): ``write(value)`` POSTs
    ``{"action": name, "value": value, "ts": unix_s}``, with the same headers, retries and
    backoff; None: alarms only."""

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
        control = config.control
        self.gate: ControlGate | None = None
        """The range and interlock of ``write`` (None: not a control output)."""
        if control is not None:
            self.gate = ControlGate(
                config.name, control.minimum, control.maximum, control.safe_value, self.counters
            )
            self.counters.update({"control_posted": 0, "control_sent": 0, "control_failed": 0})
        self.last_value: float | None = None
        """The last control value the receiver accepted."""
        self._control_pending: float | None = None
        self._control_task: asyncio.Task[None] | None = None
        self._control_seq = 0

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
        safe = None if self.gate is None else self.gate.on_alarm(event)
        if safe is not None and loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._post_safe, safe)

    def _post_safe(self, value: float) -> None:
        try:
            self._post_control(value)
        except ControlWriteFailed as exc:
            log.warning("webhook %s: the safe value was not sent: %s", self.name, exc)

    def write(self, value: float) -> None:
        """Post the control ``value`` (returns at once; a newer value replaces one not yet
        sent; the outcome shows in ``health``, ``counters`` and ``last_value``). Raises
        ControlWriteFailed without ``control`` in the config, when interlocked by an
        alarm, outside [minimum, maximum], or before ``start``. Call it on the loop."""
        if self.gate is None:
            raise ControlWriteFailed(f"{self.name}: not a control output (no [control])")
        self.gate.check_write(value)
        self._post_control(value)

    def _post_control(self, value: float) -> None:
        assert self.gate is not None
        self.gate.check_range(value)
        if self._worker is None:
            raise ControlWriteFailed(f"{self.name}: not started")
        self._control_pending = value
        self.counters["control_posted"] += 1
        if self._control_task is None or self._control_task.done():
            self._control_task = asyncio.get_running_loop().create_task(
                self._send_controls(), name=f"webhook:{self.name}:control"
            )

    async def _send_controls(self) -> None:
        control = self.config.control
        assert control is not None
        url = str(control.url or self.config.url)
        while self._control_pending is not None:
            value, self._control_pending = self._control_pending, None
            self._control_seq += 1
            body = {"action": self.name, "value": value, "ts": time.time()}
            headers = {"Idempotency-Key": f"{self.name}-control-{self._control_seq}"}
            error = await self._post_retrying(body, headers, url)
            if error is None:
                self.counters["control_sent"] += 1
                self.health.succeeded()
                self.last_value = value
            else:
                self.counters["control_failed"] += 1
                self.health.failed(f"control {value:g}: {_describe(error)}")
                log.warning("webhook %s: control %g not delivered: %s", self.name, value, error)

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
        control = self._control_task
        if control is not None and not control.done():
            await asyncio.wait({control}, timeout=timeout_s)
            control.cancel()
        self._control_task = None
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
        error = await self._post_retrying(body, headers, self._url)
        if error is not None:
            self.counters["failed"] += 1
            self.health.failed(f"alarm {event.alarm.id} {event.kind.value}: {_describe(error)}")
            log.warning(
                "webhook %s: gave up on alarm %d %s: %s",
                self.name,
                event.alarm.id,
                event.kind.value,
                error,
            )
        else:
            self.counters["sent"] += 1
            self.health.succeeded()

    async def _post_retrying(
        self, body: dict[str, Any], headers: dict[str, str], url: str
    ) -> BaseException | None:
        """POST with the retries and backoff; None when accepted, else the last error."""
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
                    await self._post(body, headers, url)
        except (DeliveryFailed, DeliveryRejected, httpx.HTTPError) as exc:
            return exc
        return None

    async def _post(self, body: dict[str, Any], headers: dict[str, str], url: str) -> None:
        assert self._client is not None
        response = await self._client.post(url, json=body, headers=headers)
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
