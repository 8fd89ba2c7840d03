"""Sources of text lines read through pyserial: what the serial and tcp plugins share.

``LineSourceConfig`` holds the line protocol's settings (format, columns, mapping,
timeouts, backoff); each plugin adds where its bytes come from. ``LineSource`` is the
reader: a ``ThreadedSource`` whose thread opens the port (``_open_port``, the plugin's
job: pyserial's ``serial_for_url``, so device paths, ptys and URLs such as
``socket://`` and ``loop://`` all work), reads until the device or connection goes away,
waits (``BackoffConfig``, no jitter) and opens again. Each chunk is cut into lines,
parsed and mapped in that thread (``lineproto``), and the readings handed to the loop.
"""

from __future__ import annotations

import codecs
import logging
import threading
import time
from collections.abc import Callable
from typing import Annotated, Any

import serial
from pydantic import Field, model_validator

from edge_agent.reading import Reading
from edge_agent.sources.base import FieldMapping, SourceConfigBase, SourceState
from edge_agent.sources.lineproto import (
    FIELDS_UNMAPPED,
    LINE_OUTCOMES,
    VALUES_NOT_FINITE,
    LineAssembler,
    LineDecoder,
    LineFormat,
)
from edge_agent.sources.threaded import (
    OPEN_FAILURES,
    QUEUE_FULL,
    RECONNECTS,
    Emit,
    ThreadedSource,
)
from edgetwin_common.retry import Backoff, BackoffConfig

__all__ = ["COUNTERS", "LineSource", "LineSourceConfig"]

log = logging.getLogger(__name__)

READ_TIMEOUTS = "read_timeouts"
"""Periods of read_timeout_s without a byte (the device is silent, not necessarily gone)."""

COUNTERS: tuple[str, ...] = (
    *LINE_OUTCOMES,
    VALUES_NOT_FINITE,
    FIELDS_UNMAPPED,
    RECONNECTS,
    OPEN_FAILURES,
    READ_TIMEOUTS,
    QUEUE_FULL,
)
"""Every counter a line source keeps, all present (0) from the start."""


class LineSourceConfig(SourceConfigBase):
    """The line protocol: one record per line (docs/sources.md)."""

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
    encoding: str = "utf-8"
    """Text encoding of the lines; undecodable lines count as lines_garbage."""
    backoff: BackoffConfig = BackoffConfig(initial_s=0.5, max_s=30.0)
    """Waits between attempts to reopen a lost device or connection (no jitter)."""

    @model_validator(mode="after")
    def _consistent(self) -> LineSourceConfig:
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
        try:
            codecs.lookup(self.encoding)
        except LookupError:
            problems.append(f"unknown encoding {self.encoding!r}")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def channel_names(self) -> list[str]:
        return list(dict.fromkeys(m.channel for m in self.fields.values()))


class LineSource(ThreadedSource):
    """Readings from a device printing lines (see ``LineSourceConfig``); a plugin says
    how to open its port (``_open_port``) and what to call it in logs (``_where``).

    ``stream()`` starts the reader thread and yields readings until the consumer stops
    iterating (or cancels); it never raises for bad lines or a lost device, which show in
    ``health`` (state CONNECTED / DISCONNECTED, last_error, counters ``COUNTERS``). One
    consumer at a time: a second concurrent ``stream()`` raises ``SourceBusy``.

    clock: receive-time stamp (UNIX s) for lines without a device timestamp, and the
        time of state changes; injectable for tests.
    queue_size: readings buffered for a slow consumer before new ones are dropped
        (counted as readings_dropped_queue_full).
    """

    config: LineSourceConfig

    def __init__(
        self,
        config: LineSourceConfig,
        *,
        clock: Callable[[], float] = time.time,
        queue_size: int = 4096,
    ) -> None:
        super().__init__(config, COUNTERS, clock=clock, queue_size=queue_size)
        self._port: Any = None  # the open pyserial port, so the loop can cancel a read

    # --- what a plugin says --------------------------------------------------------

    def _open_port(self) -> Any:
        """An open pyserial port for this source (``timeout`` = read_timeout_s). Raises
        serial.SerialException, OSError or ValueError when it cannot be opened."""
        raise NotImplementedError

    def _where(self) -> str:
        """The port as configured, for errors."""
        raise NotImplementedError

    def _resolved(self) -> str:
        """The port as the log line on connecting shows it (e.g. where a link points)."""
        return self._where()

    def _silence_limit_s(self) -> float | None:
        """Seconds without a byte after which the port counts as lost; None: never."""
        return None

    # --- reader thread -------------------------------------------------------------

    def _join_timeout_s(self) -> float:
        # cancel_read (or, for ports without it, the read timeout) ends the read.
        return self.config.read_timeout_s + 1.0

    def _interrupt(self) -> None:
        port = self._port
        if port is not None and hasattr(port, "cancel_read"):
            port.cancel_read()  # wakes the blocked read at once (posix ports)

    def _run(self, stop: threading.Event, emit: Emit) -> None:
        config = self.config
        counters = self.health.counters
        decoder = LineDecoder(config, counters, self._clock)
        assembler = LineAssembler(config.max_line_bytes, counters)
        backoff = Backoff(config.backoff)
        connected_once = False
        for _ in backoff.attempts_until(stop):
            port = self._open()
            if port is None:
                continue
            backoff.reset()
            if connected_once:
                counters[RECONNECTS] += 1
            connected_once = True
            self._port = port
            self._change(SourceState.CONNECTED, None)
            try:
                lost = self._read_until_lost(port, stop, assembler, decoder, emit)
            finally:
                self._port = None
                _close_quietly(port)
            if lost is None:
                break
            self._change(SourceState.DISCONNECTED, f"device lost: {lost}")

    def _open(self) -> Any:
        try:
            port = self._open_port()
        except (serial.SerialException, OSError, ValueError) as exc:
            self.health.counters[OPEN_FAILURES] += 1
            # pyserial's message usually names the port already.
            where = self._where()
            text = str(exc) if where in str(exc) else f"cannot open {where}: {exc}"
            self._change(SourceState.DISCONNECTED, text)
            return None
        try:
            # Bytes buffered before we opened are stale (receive time would be wrong);
            # the assembler then drops the first, possibly cut, line.
            port.reset_input_buffer()
        except (serial.SerialException, OSError) as exc:
            _close_quietly(port)
            self.health.counters[OPEN_FAILURES] += 1
            self._change(SourceState.DISCONNECTED, f"cannot open {self._where()}: {exc}")
            return None
        return port

    def _read_until_lost(
        self,
        port: Any,
        stop: threading.Event,
        assembler: LineAssembler,
        decoder: LineDecoder,
        emit: Emit,
    ) -> str | None:
        """Read lines until the device is lost (returns why) or ``stop`` (returns None)."""
        health = self.health
        counters = health.counters
        limit = self._silence_limit_s()
        silent_s = 0.0
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
                silent_s += self.config.read_timeout_s
                if limit is not None and silent_s >= limit:
                    return f"no byte for {silent_s:.3g} s"
                continue
            silent_s = 0.0
            batch: list[Reading] = []
            for line in assembler.feed(data):
                batch += decoder.decode(line)
            if decoder.last_rejection is not None:
                rejected = decoder.last_rejection
                health.last_error = f"line rejected, {rejected.reason.value}: {rejected.detail}"
                decoder.last_rejection = None
            if batch:
                health.last_reading_ts = batch[-1].ts
                if not emit(batch):
                    return None  # the loop is closed: nobody is listening any more
        assembler.drop_pending()
        return None

    def _connected_text(self) -> str:
        return f"connected to {self._resolved()}"

    def _disconnected_text(self, error: str | None) -> str:
        backoff = self.config.backoff
        return (
            f"disconnected ({error}); retrying every {backoff.initial_s:.3g}..{backoff.max_s:.3g} s"
        )


def _close_quietly(port: Any) -> None:
    try:
        port.close()
    except (serial.SerialException, OSError) as exc:
        # Closing a port whose device vanished can fail; the port is gone either way.
        log.debug("closing port: %s", exc)
