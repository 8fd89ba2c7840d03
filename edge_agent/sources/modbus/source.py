"""The Modbus source: polls a register map with pymodbus' client, in a thread of its own.

pymodbus' synchronous clients (``ModbusSerialClient`` over pyserial with the RTU framer,
``ModbusTcpClient`` for gateways) do blocking request/response exchanges, so one thread
per source runs the poll loop and hands readings to the event loop (``thread_stream``).
RTU is a master/slave bus: one request at a time, so one thread is also the right model.

The poll loop is supervised: open the port (or connection), poll each block when it is
due, and when the port fails, or every device stopped answering, close it and reopen
after a backoff (``backoff.initial_s`` doubling up to ``backoff.max_s``). A device that
fails ``offline_after_failures`` requests in a row is marked gone and retried with the
same backoff, so a dead device does not eat the bus time of the live ones.

Failed requests are classified with what came back on the wire (pymodbus' RTU framer
silently drops a frame whose CRC does not match and then times out): nothing -> timeout,
a frame whose CRC does not match -> crc error. Exception responses are counted apart.

RTU has no transaction id, so a late answer looks like the answer to the next request.
Three defences: every answer's unit, function code and byte count must be the request's
(``answer.mismatch``; a mismatch is counted and dropped, never stored); bytes waiting on
the line before a request are flushed (and counted); and after a request without a valid
answer the line is left quiet for one more ``timeout_s`` before the next request, so an
answer up to twice the timeout late is flushed rather than taken for the next one's.
"""

from __future__ import annotations

import heapq
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pymodbus.exceptions import ConnectionException, ModbusException

from edge_agent.reading import Reading
from edge_agent.sources.base import SourceState
from edge_agent.sources.modbus.answer import EXCEPTION_NAMES, mismatch
from edge_agent.sources.modbus.client import FrameWatch, build_client, where
from edge_agent.sources.modbus.config import (
    DataType,
    ModbusRegister,
    ModbusSourceConfig,
    RegisterKind,
    Transport,
)
from edge_agent.sources.modbus.decode import decode_words
from edge_agent.sources.modbus.plan import Block, plan_blocks
from edge_agent.sources.modbus.write import WriteMailbox, serve_one
from edge_agent.sources.threaded import (
    OPEN_FAILURES,
    QUEUE_FULL,
    RECONNECTS,
    Emit,
    ThreadedSource,
)
from edgetwin_common.plugins import Plugin
from edgetwin_common.retry import Backoff

__all__ = [
    "COUNTERS",
    "PLUGIN",
    "REGISTER_COUNTERS",
    "ModbusSource",
    "register_counter",
]

log = logging.getLogger(__name__)

REQUESTS = "requests"
"""Read requests sent."""
TIMEOUTS = "timeouts"
"""Requests with no (complete) answer within timeout_s."""
CRC_ERRORS = "crc_errors"
"""Answers whose CRC did not match (RTU): noise, a bad termination, two masters."""
EXCEPTIONS = "exceptions"
"""Exception responses: the device answered but refused (e.g. 2, illegal data address)."""
DEVICES_LOST = "devices_lost"
"""A device went from answering to offline_after_failures failures in a row."""
DEVICES_RECOVERED = "devices_recovered"
"""A device marked gone answered again."""
POLLS_LATE = "polls_late"
"""Polls that came a period or more late: the bus is too slow for the configured rates."""
VALUES_NOT_FINITE = "values_not_finite"
"""A float32 that is NaN or infinite (often an unconfigured sensor input): dropped."""
MISMATCHED = "answers_mismatched"
"""Valid-CRC answers whose unit, function code or byte count is not the request's (a late
answer to another request, another master): dropped, never stored."""
STALE_FLUSHED = "stale_flushes"
"""Requests (RTU) before which bytes were already waiting on the line: discarded."""

COUNTERS: tuple[str, ...] = (
    REQUESTS,
    TIMEOUTS,
    CRC_ERRORS,
    EXCEPTIONS,
    RECONNECTS,
    OPEN_FAILURES,
    DEVICES_LOST,
    DEVICES_RECOVERED,
    POLLS_LATE,
    VALUES_NOT_FINITE,
    MISMATCHED,
    STALE_FLUSHED,
    QUEUE_FULL,
)
"""Source-wide counters, all present (0) from the start."""

REGISTER_COUNTERS: tuple[str, ...] = ("reads", TIMEOUTS, CRC_ERRORS, EXCEPTIONS, MISMATCHED)
"""Counted per register as ``<channel>:<counter>`` (``register_counter``)."""


def register_counter(channel: str, counter: str) -> str:
    """The health counter name of ``counter`` for the register feeding ``channel``."""
    return f"{channel}:{counter}"


@dataclass(slots=True)
class _Device:
    """Whether one slave answers, and when to try a gone one again."""

    slave: int
    backoff: Backoff
    """Waits between retries while the device is gone."""
    failures: int = 0
    is_gone: bool = False
    has_answered: bool = False


class ModbusSource(ThreadedSource):
    """Readings from Modbus devices (see ``ModbusSourceConfig``).

    ``stream()`` starts the poll thread and yields readings until the consumer stops; it
    never raises for a silent, failing or vanished device: that shows in ``health``
    (state, last_error, ``COUNTERS`` and per-register ``REGISTER_COUNTERS``). One
    consumer at a time: a second concurrent ``stream()`` raises ``SourceBusy``.

    clock: the time stamped on readings (UNIX s), shared with every other source so
        that all channels are on one time base; injectable for tests.
    client_factory: builds the pymodbus client (tests and the benchmark may pass one
        with other settings); default ``build_client``.
    """

    config: ModbusSourceConfig

    def __init__(
        self,
        config: ModbusSourceConfig,
        *,
        clock: Callable[[], float] = time.time,
        client_factory: Callable[[ModbusSourceConfig, FrameWatch], Any] | None = None,
        queue_size: int = 4096,
    ) -> None:
        super().__init__(config, COUNTERS, clock=clock, queue_size=queue_size)
        for reg in config.registers:
            for counter in REGISTER_COUNTERS:
                self.health.counters[register_counter(reg.channel, counter)] = 0
        self.blocks = plan_blocks(config.registers, config.max_block_registers)
        self._client_factory = client_factory or build_client
        self.writes = WriteMailbox(config.backoff)
        """Register writes for this bus (a modbus_setpoint action with ``source`` naming
        this source): the poll thread, the bus's one owner, serves them between polls."""

    def _interrupt(self) -> None:
        self.writes.wake()

    def _join_timeout_s(self) -> float:
        # A request in flight is not interruptible: wait out its timeout.
        return self.config.timeout_s + 2.0

    # --- poll thread ---------------------------------------------------------------

    def _run(self, stop: threading.Event, emit: Emit) -> None:
        config = self.config
        counters = self.health.counters
        backoff = Backoff(config.backoff)
        # Outlives a reopened port: a device lost before the port was reopened and
        # answering after it has recovered (the single-device bus case).
        devices = {b.slave: _Device(b.slave, Backoff(config.backoff)) for b in self.blocks}
        was_open = False
        for _ in backoff.attempts_until(stop):
            watch = FrameWatch()
            client = self._client_factory(config, watch)
            if not client.connect():
                counters[OPEN_FAILURES] += 1
                self._change(SourceState.DISCONNECTED, f"cannot open {where(config)}")
                client.close()
                continue
            if was_open:
                counters[RECONNECTS] += 1
            was_open = True
            try:
                lost, answered = self._poll_until_lost(client, watch, devices, stop, emit)
            finally:
                client.close()
            if lost is None:
                break
            if answered:
                backoff.reset()
            self._change(SourceState.DISCONNECTED, lost)
        self.writes.fail_pending(f"source {self.name} stopped")

    def _poll_until_lost(
        self,
        client: Any,
        watch: FrameWatch,
        devices: dict[int, _Device],
        stop: threading.Event,
        emit: Emit,
    ) -> tuple[str | None, bool]:
        """Poll until the port fails or every device is gone (returns why) or ``stop``
        (returns None); and whether any device answered meanwhile."""
        config = self.config
        counters = self.health.counters
        is_rtu = config.transport is not Transport.TCP
        quiet_until = 0.0
        # Devices polled since the port was (re)opened: the port is given up only after
        # each one had its chance on it, or a device gone before the reopen would hide
        # the others (every block is due at once after a reopen).
        tried: set[int] = set()
        start = time.monotonic()
        # (due, index): blocks are polled in order of their due time; ties by config order.
        schedule = [(start, i) for i in range(len(self.blocks))]
        heapq.heapify(schedule)
        answered = False
        while not stop.is_set():
            due, index = schedule[0]
            now = time.monotonic()
            if is_rtu and quiet_until > now:
                if self.writes.wait(stop, quiet_until - now):
                    break
                continue
            try:
                # A write waiting goes first (a setpoint must not wait for a poll cycle).
                if is_rtu and self.writes.is_due():
                    self._flush_stale(client)
                if (outcome := serve_one(client, self.writes, where(config))) is not None:
                    if outcome.error is not None and not outcome.is_final:
                        # No answer: a late one may still come; let it be flushed.
                        quiet_until = time.monotonic() + config.timeout_s
                    continue
            except ConnectionException as exc:
                return f"{where(config)} lost: {exc}", answered
            if due > now:
                if self.writes.wait(stop, due - now):
                    break
                continue
            heapq.heappop(schedule)
            block = self.blocks[index]
            device = devices[block.slave]
            try:
                if is_rtu:
                    self._flush_stale(client)
                readings = self._poll(client, watch, block, device)
            except ConnectionException as exc:
                return f"{where(config)} lost: {exc}", answered
            tried.add(block.slave)
            if device.failures:
                # A late answer may still be on its way: let it arrive and be flushed.
                quiet_until = time.monotonic() + config.timeout_s
            else:
                answered = True
            if readings and not emit(readings):
                break
            now = time.monotonic()
            if device.is_gone:
                next_due = now + device.backoff.next_delay()
            else:
                next_due = due + block.period_s
                if next_due <= now:
                    counters[POLLS_LATE] += 1
                    # Keep the phase, skip the missed polls: never a burst to catch up.
                    missed = math.floor((now - due) / block.period_s)
                    next_due = due + (missed + 1) * block.period_s
            heapq.heappush(schedule, (next_due, index))
            if len(tried) == len(devices) and all(d.is_gone for d in devices.values()):
                gone = ", ".join(str(s) for s in sorted(devices))
                return f"no device answers on {where(config)} (slave {gone})", answered
            if any(d.has_answered and not d.is_gone for d in devices.values()):
                self._change(SourceState.CONNECTED, None)
        return None, answered

    def _poll(self, client: Any, watch: FrameWatch, block: Block, device: _Device) -> list[Reading]:
        """One read request; its readings, or [] with the failure counted. Raises
        ConnectionException when the port itself is gone."""
        counters = self.health.counters
        counters[REQUESTS] += 1
        read = _READERS[block.kind]
        try:
            response = read(client, block.address, count=block.count, device_id=block.slave)
        except ConnectionException:
            raise
        except ModbusException as exc:
            outcome = CRC_ERRORS if watch.is_crc_error() else TIMEOUTS
            self._count(block, outcome)
            self._failed(device, block, f"{block.describe()}: {_outcome_text(outcome, exc)}")
            return []
        if (why := mismatch(response, block)) is not None:
            # Not this request's answer (RTU cannot tell by id): as useless as no answer.
            self._count(block, MISMATCHED)
            self._failed(device, block, f"{block.describe()}: {why}, dropped")
            return []
        if response.isError():
            code = int(response.exception_code)
            self._count(block, EXCEPTIONS)
            self._answered(device)
            name = EXCEPTION_NAMES.get(code, "unknown")
            self.health.last_error = f"{block.describe()}: exception {code} ({name})"
            return []
        self._answered(device)
        ts = self._clock()
        readings: list[Reading] = []
        for reg in block.registers:
            counters[register_counter(reg.channel, "reads")] += 1
            raw = _raw_value(response, block, reg)
            value = raw * reg.scale + reg.offset
            if not math.isfinite(value):
                counters[VALUES_NOT_FINITE] += 1
                continue
            readings.append(Reading(ts, reg.channel, value))
        if readings:
            self.health.last_reading_ts = ts
        return readings

    def _count(self, block: Block, outcome: str) -> None:
        counters = self.health.counters
        counters[outcome] += 1
        for reg in block.registers:
            counters[register_counter(reg.channel, outcome)] += 1

    def _flush_stale(self, client: Any) -> None:
        """Discard whatever waits on the serial line before a request: nothing the device
        sends before it has the request can be the answer to it. Raises
        ConnectionException when the port is gone."""
        port = getattr(client, "socket", None)
        try:
            if port is not None and port.in_waiting:
                port.reset_input_buffer()
                self.health.counters[STALE_FLUSHED] += 1
        except OSError as exc:  # serial.SerialException too: the adapter was pulled
            raise ConnectionException(f"{where(self.config)}: {exc}") from exc

    def _answered(self, device: _Device) -> None:
        if device.is_gone and device.has_answered:
            self.health.counters[DEVICES_RECOVERED] += 1
            log.info("source %s: slave %d answers again", self.name, device.slave)
        device.failures = 0
        device.is_gone = False
        device.has_answered = True

    def _failed(self, device: _Device, block: Block, error: str) -> None:
        self.health.last_error = error
        device.failures += 1
        if not device.is_gone and device.failures >= self.config.offline_after_failures:
            device.is_gone = True
            device.backoff.reset()
            if device.has_answered:
                self.health.counters[DEVICES_LOST] += 1
            log.warning(
                "source %s: slave %d gone after %d failed requests (%s); retrying with backoff",
                self.name,
                device.slave,
                device.failures,
                error,
            )

    def _connected_text(self) -> str:
        return f"polling {where(self.config)}"

    def _disconnected_text(self, error: str | None) -> str:
        backoff = self.config.backoff
        return (
            f"disconnected ({error}); retrying every {backoff.initial_s:.3g}..{backoff.max_s:.3g} s"
        )


_READERS: dict[RegisterKind, Callable[..., Any]] = {
    RegisterKind.HOLDING: lambda c, a, **kw: c.read_holding_registers(a, **kw),
    RegisterKind.INPUT: lambda c, a, **kw: c.read_input_registers(a, **kw),
    RegisterKind.COIL: lambda c, a, **kw: c.read_coils(a, **kw),
    RegisterKind.DISCRETE_INPUT: lambda c, a, **kw: c.read_discrete_inputs(a, **kw),
}


def _raw_value(response: Any, block: Block, reg: ModbusRegister) -> float:
    offset = reg.address - block.address
    if reg.data_type is DataType.BOOL:
        return 1.0 if response.bits[offset] else 0.0
    words = response.registers[offset : offset + reg.data_type.words]
    return decode_words(words, reg.data_type, reg.word_order, reg.byte_order)


def _outcome_text(outcome: str, exc: ModbusException) -> str:
    if outcome == CRC_ERRORS:
        return "answer with a bad CRC"
    return f"no answer ({exc})"


PLUGIN = Plugin(ModbusSourceConfig, ModbusSource)
