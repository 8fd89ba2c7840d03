"""Register writes on a Modbus bus: the request, its one-slot mailbox and the exchange.

A bus has one owner, the thread holding its pymodbus client: the Modbus source's poll
thread when a source reads the same bus (an RS-485 line is master/slave, one request at
a time: a second master on the same port would garble both), or the modbus_setpoint
action's own thread otherwise (``OwnBus``). Writers post to the owner's ``WriteMailbox``
and never wait: the owner takes the request between two polls, writes it (function 16,
write multiple registers, or 6, write single register), reads it back when asked to, and
calls ``done`` with the outcome, from its thread.

The mailbox holds one request: a newer value replaces one not yet sent (a setpoint is a
state, not a queue of commands: only the latest matters). A transient failure (no
answer, the port gone) is retried with backoff, up to the writer's ``retries``, unless a
newer value replaces it; an exception answer (the device refused: illegal address, value out of its
range) or a read-back that differs is final.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pymodbus.exceptions import ConnectionException, ModbusException

from edge_agent.sources.modbus.answer import EXCEPTION_NAMES
from edge_agent.sources.modbus.client import build_client, where
from edge_agent.sources.modbus.config import BusSettings
from edgetwin_common.retry import Backoff, BackoffConfig

__all__ = ["OwnBus", "RegisterWrite", "WriteMailbox", "WriteOutcome", "perform_write"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class WriteOutcome:
    """What became of a write: ``error`` None when the device took it (and, with verify,
    read it back unchanged); ``is_final`` when retrying cannot help (an exception answer,
    a read-back that differs)."""

    error: str | None
    is_final: bool = False
    attempts: int = 1


@dataclass(frozen=True, slots=True)
class RegisterWrite:
    """One value to write: ``words`` (16-bit, in address order) to holding registers
    from ``address`` of unit ``slave``; ``what`` names it in errors ("pump-load: unit 1
    holding 16"); ``done(outcome)`` is called from the bus owner's thread."""

    slave: int
    address: int
    words: tuple[int, ...]
    verify: bool
    function: int
    """6 (write single register, one word) or 16 (write multiple registers)."""
    retries: int
    """Transient failures retried (with the mailbox's backoff) before one is final."""
    what: str
    done: Callable[[WriteOutcome], None]


class WriteMailbox:
    """The bus owner's one-slot inbox (thread-safe). ``post`` never blocks."""

    def __init__(self, backoff: BackoffConfig) -> None:
        self._cond = threading.Condition()
        self._pending: RegisterWrite | None = None
        self._due = 0.0
        self._attempts = 0
        self._backoff = Backoff(backoff)
        self.replaced = 0
        """Requests replaced by a newer one before they were sent."""

    def post(self, request: RegisterWrite) -> None:
        """Write ``request`` as soon as the bus is free, replacing any not yet sent."""
        with self._cond:
            if self._pending is not None:
                self.replaced += 1
            self._pending = request
            self._due = 0.0
            self._attempts = 0
            self._backoff.reset()
            self._cond.notify_all()

    @property
    def attempts(self) -> int:
        """Attempts at the request taken last."""
        with self._cond:
            return self._attempts

    def take(self) -> RegisterWrite | None:
        """The request due now, if any (it leaves the mailbox)."""
        with self._cond:
            request = self._pending
            if request is None or self._due > time.monotonic():
                return None
            self._pending = None
            self._attempts += 1
            return request

    def retry_later(self, request: RegisterWrite) -> WriteOutcome | None:
        """Put back a request that failed transiently, due after the next backoff,
        unless a newer one came in meanwhile or its retries are spent. Returns
        None when it was put back, else the attempts' final count (as an outcome
        without error text; the caller adds it)."""
        with self._cond:
            attempts = self._attempts
            if self._pending is not None:
                return WriteOutcome(None, is_final=True, attempts=attempts)
            if attempts > request.retries:
                return WriteOutcome(None, is_final=True, attempts=attempts)
            self._pending = request
            self._due = time.monotonic() + self._backoff.next_delay()
            return None

    def is_due(self) -> bool:
        """Whether a request is waiting and due now."""
        with self._cond:
            return self._pending is not None and self._due <= time.monotonic()

    def wait(self, stop: threading.Event, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` for ``stop``, a post or a retry falling due; returns
        whether ``stop`` is set."""
        with self._cond:
            if self._pending is not None and not stop.is_set():
                timeout_s = min(timeout_s, max(0.0, self._due - time.monotonic()))
            if (self._pending is None or self._due > time.monotonic()) and not stop.is_set():
                self._cond.wait(timeout_s)
        return stop.is_set()

    def wake(self) -> None:
        """Wake a ``wait`` (the owner is stopping)."""
        with self._cond:
            self._cond.notify_all()

    def fail_pending(self, error: str) -> None:
        """The owner is going away: the request waiting (if any) fails with ``error``."""
        with self._cond:
            request, self._pending = self._pending, None
        if request is not None:
            request.done(WriteOutcome(error, is_final=True, attempts=self._attempts))


def perform_write(client: Any, request: RegisterWrite, bus: str) -> WriteOutcome:
    """One write request (and its read-back) on an open client. Raises
    ConnectionException when the port or connection itself is gone."""
    try:
        if request.function == 6:
            (word,) = request.words
            response = client.write_register(request.address, word, device_id=request.slave)
        else:
            response = client.write_registers(
                request.address, list(request.words), device_id=request.slave
            )
    except ConnectionException:
        raise
    except ModbusException as exc:
        return WriteOutcome(f"{request.what} on {bus}: no answer ({exc})")
    if response.isError():
        return WriteOutcome(_exception_text(request, bus, response), is_final=True)
    if not request.verify:
        return WriteOutcome(None)
    try:
        back = client.read_holding_registers(
            request.address, count=len(request.words), device_id=request.slave
        )
    except ConnectionException:
        raise
    except ModbusException as exc:
        return WriteOutcome(f"{request.what} on {bus}: no answer to the read-back ({exc})")
    if back.isError():
        return WriteOutcome(_exception_text(request, bus, back, " to the read-back"), True)
    if tuple(back.registers) != request.words:
        return WriteOutcome(
            f"{request.what} on {bus}: read back {list(back.registers)} after writing "
            f"{list(request.words)}",
            is_final=True,
        )
    return WriteOutcome(None)


def _exception_text(request: RegisterWrite, bus: str, response: Any, to: str = "") -> str:
    code = int(response.exception_code)
    return (
        f"{request.what} on {bus}: Modbus exception {code} "
        f"({EXCEPTION_NAMES.get(code, 'unknown')}){to}"
    )


def serve_one(client: Any, mailbox: WriteMailbox, bus: str) -> WriteOutcome | None:
    """Take and perform the mailbox's due request, if any; its outcome (None: none due).
    A transient failure goes back to the mailbox (backoff) until the request's
    retries are spent; ``done`` hears of every failure (so the writer's health shows it at once)
    and of the success. Raises ConnectionException when the bus itself is gone (the
    request is put back first, as a transient failure)."""
    request = mailbox.take()
    if request is None:
        return None
    try:
        outcome = perform_write(client, request, bus)
    except ConnectionException as exc:
        failed(mailbox, request, f"{request.what}: {bus} lost: {exc}")
        raise
    if outcome.error is not None and not outcome.is_final:
        failed(mailbox, request, outcome.error)
    else:
        request.done(outcome)
    return outcome


def failed(mailbox: WriteMailbox, request: RegisterWrite, error: str) -> None:
    """A transient failure of ``request``: retried later (the writer hears of the
    failure now, not final) or, retries spent, final."""
    spent = mailbox.retry_later(request)
    if spent is None:
        request.done(WriteOutcome(error, attempts=mailbox.attempts))
    else:
        request.done(WriteOutcome(error, is_final=True, attempts=spent.attempts))


class OwnBus:
    """A bus of the modbus_setpoint action's own (no source reads it): a thread holding
    the client, serving the mailbox; the client is (re)opened on demand. ``start`` and
    ``stop`` from the event loop; ``stop`` waits at most one request's timeout."""

    def __init__(self, settings: BusSettings, backoff: BackoffConfig, name: str) -> None:
        self.settings = settings
        self.mailbox = WriteMailbox(backoff)
        self.name = name
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: str | None = None
        """Why the bus cannot be opened now (None: open or not tried yet)."""

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"modbus-write-{self.name}")
        self._thread.daemon = True
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self.mailbox.wake()
        if self._thread is not None:
            self._thread.join(self.settings.timeout_s * 2 + 2.0)
            self._thread = None
        self.mailbox.fail_pending(f"{where(self.settings)}: the action stopped")

    def _run(self) -> None:
        bus = where(self.settings)
        client: Any = None
        try:
            while not self.mailbox.wait(self._stop, 1.0):
                if not self.mailbox.is_due():
                    continue
                if client is None:
                    client = build_client(self.settings)
                    if not client.connect():
                        self.error = f"cannot open {bus}"
                        client.close()
                        client = None
                        self._fail_due(self.error)
                        continue
                    self.error = None
                try:
                    serve_one(client, self.mailbox, bus)
                except ConnectionException:
                    client.close()
                    client = None
        finally:
            if client is not None:
                client.close()

    def _fail_due(self, error: str) -> None:
        # The bus cannot be opened: the due request counts one failed attempt (and is
        # retried with backoff, like a timeout).
        request = self.mailbox.take()
        if request is not None:
            failed(self.mailbox, request, f"{request.what}: {error}")
