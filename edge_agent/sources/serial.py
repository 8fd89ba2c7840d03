"""Serial line-protocol source: microcontrollers printing CSV, key=value or JSON lines.

One reader thread per source does the blocking pyserial reads (pyserial has no asyncio
API); each chunk is cut into lines, parsed and mapped in that thread, and the readings
are handed to the event loop with ``loop.call_soon_threadsafe`` into a bounded
``asyncio.Queue``. A line reaches the consumer within the time it takes to wake the loop
(tens of microseconds), not after a polling period.

The thread is a supervised loop: open the port (``serial.serial_for_url``, so pyserial
URLs such as ``loop://`` and pty paths work), read until the device goes away, wait with
exponential backoff (``reconnect_min_s`` doubling up to ``reconnect_max_s``), open again.
The port is reopened by its configured path every time, so a /dev/serial/by-id link
follows the device when a replug gives it another ttyUSB number.
"""

from __future__ import annotations

import asyncio
import codecs
import logging
import os
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Annotated, Any, Literal

import serial
from pydantic import Field, model_validator

from edge_agent.reading import Reading
from edge_agent.sources.base import FieldMapping, SourceHealth, SourceState
from edge_agent.sources.errors import SourceBusy
from edge_agent.sources.lineproto import (
    FIELDS_UNMAPPED,
    LINE_OUTCOMES,
    VALUES_NOT_FINITE,
    LineAssembler,
    LineDecoder,
    LineFormat,
)
from edgetwin_common.config import Strict

__all__ = ["COUNTERS", "SOURCE_TYPE", "LineFormat", "SerialSource", "SerialSourceConfig", "backoff"]

SOURCE_TYPE = "serial"

log = logging.getLogger(__name__)

RECONNECTS = "reconnects"
"""Successful opens after the first one."""
OPEN_FAILURES = "open_failures"
"""Attempts to open the port that failed (device absent, busy, no permission)."""
READ_TIMEOUTS = "read_timeouts"
"""Periods of read_timeout_s without a byte (the device is silent, not necessarily gone)."""
QUEUE_FULL = "readings_dropped_queue_full"
"""Readings dropped because the consumer fell queue_size readings behind."""

COUNTERS: tuple[str, ...] = (
    *LINE_OUTCOMES,
    VALUES_NOT_FINITE,
    FIELDS_UNMAPPED,
    RECONNECTS,
    OPEN_FAILURES,
    READ_TIMEOUTS,
    QUEUE_FULL,
)
"""Every counter a serial source keeps, all present (0) from the start."""


class SerialSourceConfig(Strict):
    """A serial port (USB CDC, UART, RS-485 adapter) printing one record per line."""

    type: Literal["serial"]
    name: Annotated[str, Field(min_length=1, max_length=64)]
    """The source's name in /status, logs and metrics (unique among sources)."""
    port: Annotated[str, Field(min_length=1)]
    """Device path (prefer /dev/serial/by-id/..., stable across replugs) or a pyserial URL."""
    baudrate: Annotated[int, Field(gt=0, le=4_000_000)] = 115200
    """Bits per second (ignored by USB CDC devices and ptys)."""
    format: LineFormat = LineFormat.CSV
    """csv, kv (key=value pairs) or jsonl (one JSON object per line); docs/sources.md."""
    csv_fields: list[str] = Field(default_factory=list)
    """Field name of each CSV column, in order (required for format = "csv")."""
    csv_delimiter: Annotated[str, Field(min_length=1, max_length=1)] = ","
    """One character between CSV columns."""
    fields: Annotated[dict[str, FieldMapping], Field(min_length=1)]
    """Field name in the line -> channel; fields not listed are ignored (and counted)."""
    timestamp_field: str | None = None
    """Field holding the device's own UNIX timestamp (s); None: stamp on receipt."""
    read_timeout_s: Annotated[float, Field(gt=0, le=60)] = 1.0
    """Seconds without a byte counted as one read timeout (the device stays connected;
    a line left unfinished then is dropped as partial)."""
    max_line_bytes: Annotated[int, Field(ge=16, le=65536)] = 512
    """Longer lines are counted (lines_too_long) and skipped, never buffered."""
    reconnect_min_s: Annotated[float, Field(gt=0)] = 0.5
    """First wait before reopening a lost device; doubles after each failed attempt."""
    reconnect_max_s: Annotated[float, Field(gt=0)] = 30.0
    """Longest wait between reopen attempts."""
    encoding: str = "utf-8"
    """Text encoding of the lines; undecodable lines count as lines_garbage."""

    @model_validator(mode="after")
    def _consistent(self) -> SerialSourceConfig:
        problems: list[str] = []
        if self.format is LineFormat.CSV:
            if not self.csv_fields:
                problems.append('format "csv" needs csv_fields (the name of each column)')
            duplicates = sorted({f for f in self.csv_fields if self.csv_fields.count(f) > 1})
            if duplicates:
                problems.append(f"csv_fields: names used twice: {', '.join(duplicates)}")
            if self.csv_fields:
                # A mapped field that is no column would silently never produce a reading.
                missing = [f for f in self.fields if f not in self.csv_fields]
                if missing:
                    problems.append(f"fields not in csv_fields: {', '.join(missing)}")
                if self.timestamp_field and self.timestamp_field not in self.csv_fields:
                    problems.append(f"timestamp_field {self.timestamp_field!r} not in csv_fields")
        if self.reconnect_max_s < self.reconnect_min_s:
            problems.append("reconnect_max_s must be >= reconnect_min_s")
        try:
            codecs.lookup(self.encoding)
        except LookupError:
            problems.append(f"unknown encoding {self.encoding!r}")
        if problems:
            raise ValueError("; ".join(problems))
        return self


class SerialSource:
    """Readings from a serial device printing lines (see ``SerialSourceConfig``).

    ``stream()`` starts the reader thread and yields readings until the consumer stops
    iterating (or cancels); it never raises for bad lines or a lost device, which show in
    ``health`` (state CONNECTED / DISCONNECTED, last_error, counters ``COUNTERS``). One
    consumer at a time: a second concurrent ``stream()`` raises ``SourceBusy``.

    clock: receive-time stamp (UNIX s) for lines without a device timestamp, and the
        time of state changes; injectable for tests.
    queue_size: readings buffered for a slow consumer before new ones are dropped
        (counted as readings_dropped_queue_full).
    """

    def __init__(
        self,
        config: SerialSourceConfig,
        *,
        clock: Callable[[], float] = time.time,
        queue_size: int = 4096,
    ) -> None:
        self.config = config
        self.name = config.name
        self.health = SourceHealth()
        # All counters exist from the start: /status iterates them from another thread
        # while the reader thread updates them, which is safe as long as no key is added.
        self.health.counters.update(dict.fromkeys(COUNTERS, 0))
        self._clock = clock
        self._queue_size = queue_size
        self._thread: threading.Thread | None = None
        self._port: Any = None  # the open pyserial port, so the loop can cancel a read
        self._logged_error: str | None = None

    def channels(self) -> list[str]:
        return list(dict.fromkeys(m.channel for m in self.config.fields.values()))

    async def stream(self) -> AsyncIterator[Reading]:
        """Readings as they arrive, in arrival order; runs until closed or cancelled."""
        if self._thread is not None and self._thread.is_alive():
            raise SourceBusy(f"source {self.name!r} is already streaming")
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Reading] = asyncio.Queue(self._queue_size)
        stop = threading.Event()

        def deliver(batch: list[Reading]) -> None:  # runs in the loop thread
            for reading in batch:
                try:
                    queue.put_nowait(reading)
                except asyncio.QueueFull:
                    self.health.counters[QUEUE_FULL] += 1

        thread = threading.Thread(
            target=self._run, args=(stop, loop, deliver), name=f"source-{self.name}", daemon=True
        )
        self._thread = thread
        thread.start()
        try:
            while True:
                yield await queue.get()
        finally:
            stop.set()
            port = self._port
            if port is not None and hasattr(port, "cancel_read"):
                port.cancel_read()  # wakes the blocked read at once (posix ports)
            # Bounded: cancel_read (or, for ports without it, the read timeout) ends the
            # read; joining here means a following stream() never races this thread.
            thread.join(timeout=self.config.read_timeout_s + 1.0)

    # --- reader thread -------------------------------------------------------------

    def _run(
        self,
        stop: threading.Event,
        loop: asyncio.AbstractEventLoop,
        deliver: Callable[[list[Reading]], None],
    ) -> None:
        config = self.config
        counters = self.health.counters
        decoder = LineDecoder(config, counters, self._clock)
        assembler = LineAssembler(config.max_line_bytes, counters)
        delays = backoff(config.reconnect_min_s, config.reconnect_max_s)
        attempts = 0
        connected_once = False
        while not stop.is_set():
            # Every attempt but the first waits: right after a loss the device is
            # usually still gone, and a failing open must not spin.
            if attempts and stop.wait(next(delays)):
                break
            attempts += 1
            port = self._open()
            if port is None:
                continue
            delays = backoff(config.reconnect_min_s, config.reconnect_max_s)
            if connected_once:
                counters[RECONNECTS] += 1
            connected_once = True
            self._port = port
            self._change(SourceState.CONNECTED, None)
            try:
                lost = self._read_until_lost(port, stop, assembler, decoder, loop, deliver)
            finally:
                self._port = None
                _close_quietly(port)
            if lost is None:
                break
            self._change(SourceState.DISCONNECTED, f"device lost: {lost}")

    def _open(self) -> Any:
        config = self.config
        try:
            port = serial.serial_for_url(
                config.port,
                baudrate=config.baudrate,
                timeout=config.read_timeout_s,
                exclusive=True,  # two readers would each get half the bytes
            )
        except (serial.SerialException, OSError, ValueError) as exc:
            self.health.counters[OPEN_FAILURES] += 1
            # pyserial's message usually names the port already.
            text = str(exc) if config.port in str(exc) else f"cannot open {config.port}: {exc}"
            self._change(SourceState.DISCONNECTED, text)
            return None
        try:
            # Bytes the kernel buffered before we opened are stale (receive time would
            # be wrong); the assembler then drops the first, possibly cut, line.
            port.reset_input_buffer()
        except (serial.SerialException, OSError) as exc:
            _close_quietly(port)
            self.health.counters[OPEN_FAILURES] += 1
            self._change(SourceState.DISCONNECTED, f"cannot open {config.port}: {exc}")
            return None
        return port

    def _read_until_lost(
        self,
        port: Any,
        stop: threading.Event,
        assembler: LineAssembler,
        decoder: LineDecoder,
        loop: asyncio.AbstractEventLoop,
        deliver: Callable[[list[Reading]], None],
    ) -> str | None:
        """Read lines until the device is lost (returns why) or ``stop`` (returns None)."""
        health = self.health
        counters = health.counters
        assembler.resync()
        while not stop.is_set():
            try:
                # Block for one byte, then take everything already there: the lowest
                # latency pyserial allows, without spinning.
                data: bytes = port.read(port.in_waiting or 1)
            except (serial.SerialException, OSError) as exc:
                assembler.drop_pending()
                return str(exc) or type(exc).__name__
            if not data:
                if stop.is_set():
                    break  # cancel_read
                counters[READ_TIMEOUTS] += 1
                assembler.silence()
                continue
            batch: list[Reading] = []
            for line in assembler.feed(data):
                batch += decoder.decode(line)
            if decoder.last_rejection is not None:
                rejected = decoder.last_rejection
                health.last_error = f"line rejected, {rejected.reason.value}: {rejected.detail}"
                decoder.last_rejection = None
            if batch:
                health.last_reading_ts = batch[-1].ts
                try:
                    loop.call_soon_threadsafe(deliver, batch)
                except RuntimeError:  # the loop is closed: nobody is listening any more
                    return None
        assembler.drop_pending()
        return None

    def _change(self, state: SourceState, error: str | None) -> None:
        """Record a state (and error); log a state change, or a new error text, once."""
        if self.health.set_state(state, self._clock(), error):
            if state is SourceState.CONNECTED:
                log.info("source %s: connected to %s", self.name, _describe(self.config.port))
            else:
                log.warning(
                    "source %s: disconnected (%s); retrying every %.3g..%.3g s",
                    self.name,
                    error,
                    self.config.reconnect_min_s,
                    self.config.reconnect_max_s,
                )
            self._logged_error = error
        elif error is not None and error != self._logged_error:
            log.info("source %s: still %s: %s", self.name, state.value, error)
            self._logged_error = error


def backoff(min_s: float, max_s: float) -> Iterator[float]:
    """Delays between reconnect attempts (s): min_s, doubling each time, capped at max_s.
    No jitter: one agent per device, there is no thundering herd to spread."""
    delay = min_s
    while True:
        yield delay
        delay = min(delay * 2.0, max_s)


def _describe(port: str) -> str:
    if "://" in port:
        return port
    real = os.path.realpath(port)
    return port if real == port else f"{port} (-> {real})"


def _close_quietly(port: Any) -> None:
    try:
        port.close()
    except (serial.SerialException, OSError) as exc:
        # Closing a port whose device vanished can fail; the port is gone either way.
        log.debug("closing serial port: %s", exc)
