"""The simulated device on a pseudo-terminal: what ``edge-agent simulate`` runs.

The pty's slave side (``/dev/pts/N``) is what a reader opens, exactly like a USB serial
device's ``/dev/ttyACM0``; an optional symlink plays the part of /dev/serial/by-id: it
is removed when the device vanishes and re-pointed at the new pty when it returns.

The device also listens: lines the host writes to the port (``load=0.6``, see
``command.py``) are read between samples and set the pump's load setpoint.
"""

from __future__ import annotations

import logging
import math
import os
import select
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from edge_agent.simulator.command import LoadCommand
from edge_agent.simulator.errors import PtyUnavailable, SimulatorSettingsInvalid
from edge_agent.simulator.faults import FaultKind
from edge_agent.simulator.pump import SimulatorSettings, iter_frames

__all__ = ["LINK_FAULTS", "PtyDevice", "SimulatorReport", "run_simulator"]

LINK_FAULTS = frozenset({FaultKind.DROPOUT, FaultKind.GARBAGE, FaultKind.VANISH})
"""Faults a reader sees as silence: it judges them on its own clock (stale after N s)."""
FAST_FORWARD_WAIT_S = 1.0
REAL_TIME_MARGIN_S = 3.0
"""...and reconnects on its own clock after them (a serial source's reopen backoff);
as long before them, so that a reader a batch behind has caught up when they begin."""

log = logging.getLogger(__name__)


class PtyDevice:
    """One pseudo-terminal pair standing in for a serial device (POSIX only).

    The master side is written by the simulator (non-blocking: when no reader drains
    the pty and its buffer is full, a line is dropped rather than the clock stalling).
    The simulator keeps the slave open too, so the pty exists between readers.

    link: a symlink to keep pointed at the current slave; an existing file there that is
        not a symlink is never replaced (SimulatorSettingsInvalid).
    """

    def __init__(self, link: Path | None = None) -> None:
        if link is not None and link.exists() and not link.is_symlink():
            raise SimulatorSettingsInvalid(f"{link} exists and is not a symlink: not replacing it")
        self.link = link
        self.slave_path: str | None = None
        self._master: int | None = None
        self._slave: int | None = None
        self._incoming = bytearray()

    @property
    def is_open(self) -> bool:
        return self._master is not None

    def open(self) -> str:
        """Create a new pty (raw mode) and point the link at it; returns the slave path.

        Raises PtyUnavailable where the OS has no ptys.
        """
        if not hasattr(os, "openpty"):
            raise PtyUnavailable("os.openpty is not available on this OS")
        import tty  # POSIX-only module: imported here so the package imports everywhere

        master, slave = os.openpty()
        # Raw: no echo (an echo would fill the master's unread buffer), no CR/LF mangling.
        tty.setraw(slave)
        os.set_blocking(master, False)
        self._master, self._slave = master, slave
        self.slave_path = os.ttyname(slave)
        if self.link is not None:
            # Atomic re-point: a reader never sees the link missing or half-written.
            tmp = self.link.with_name(f".{self.link.name}.{os.getpid()}.tmp")
            tmp.unlink(missing_ok=True)
            tmp.symlink_to(self.slave_path)
            os.replace(tmp, self.link)
        return self.slave_path

    def write(self, data: bytes) -> bool:
        """Write one line; False when the pty buffer is full (nobody reading) and the line
        (or its tail) was dropped."""
        if self._master is None:
            return False
        try:
            written = os.write(self._master, data)
        except BlockingIOError:
            return False
        return written == len(data)

    def read_lines(self) -> list[bytes]:
        """Complete lines the host has written to the port since the last call (never
        blocks; a partial line waits for its end)."""
        if self._master is None:
            return []
        while True:
            try:
                chunk = os.read(self._master, 4096)
            except (BlockingIOError, OSError):
                break
            if not chunk:
                break
            self._incoming += chunk
        if b"\n" not in self._incoming:
            return []
        *lines, rest = bytes(self._incoming).split(b"\n")
        self._incoming = bytearray(rest)
        return [line.rstrip(b"\r") for line in lines if line.strip()]

    def wait_writable(self, timeout_s: float) -> bool:
        """Wait until the pty can take bytes again (the reader drained some); False on
        timeout or when closed."""
        if self._master is None:
            return False
        return bool(select.select([], [self._master], [], timeout_s)[1])

    def close(self) -> None:
        """The device disappears: remove the link, close both sides (a reader holding the
        slave gets an I/O error, as on a USB unplug)."""
        if self.link is not None and self.link.is_symlink():
            self.link.unlink(missing_ok=True)
        for fd in (self._master, self._slave):
            if fd is not None:
                os.close(fd)
        self._master = self._slave = None
        self._incoming.clear()


@dataclass(slots=True)
class SimulatorReport:
    """What a simulator run did (counts of samples, by what happened to their line)."""

    frames: int = 0
    lines_written: int = 0
    lines_dropped_buffer_full: int = 0
    """Nobody was reading and the pty buffer (a few KiB) was full."""
    lines_withheld: int = 0
    """Samples without a line: dropout faults."""
    samples_while_vanished: int = 0
    vanishes: int = 0
    commands_applied: int = 0
    """``load=...`` lines read back from the host."""
    commands_rejected: int = 0
    """Other lines read back (not a command): ignored."""


def run_simulator(
    settings: SimulatorSettings,
    stop: threading.Event,
    on_ready: Callable[[str], None] | None = None,
    epoch: float | None = None,
    command: LoadCommand | None = None,
    real_time: frozenset[FaultKind] = frozenset(),
) -> SimulatorReport:
    """Run the simulated pump on a pty until ``stop`` is set or ``duration_s`` elapses.

    Blocking; call it from the CLI's main thread (set ``stop`` from a signal handler) or
    from a thread in tests. Lines are written at their scheduled times (start + index /
    rate, on the monotonic clock, so the rate does not drift); a run that falls behind
    catches up in a burst rather than skipping samples.

    on_ready(slave_path): called when the device appears, at the start and again after
        each vanish (with the link, if any, already pointing at it).
    epoch: UNIX time of sample 0 in the printed timestamps; default: now. A fast-forward
        run starts in the past so that its timestamps never run ahead of the clock.
    command: where the setpoints read back from the host go (its ``history`` records
        when each took effect); default: a new one.
    real_time: at fast-forward, these faults are played at 1x, from REAL_TIME_MARGIN_S
        before them to as long after (``LINK_FAULTS``: a reader measures silence and
        waits to reopen on its own clock; a 30-second dropout fast-forwarded to 0.1 s
        would be no dropout to it).

    Raises PtyUnavailable (no ptys on this OS), SimulatorSettingsInvalid (link path is a
    regular file).
    """
    device = PtyDevice(settings.link)
    report = SimulatorReport()
    epoch = time.time() if epoch is None else epoch
    command = LoadCommand() if command is None else command
    due = time.monotonic()
    slow = _real_time_spans(settings, real_time)
    fast_step, slow_step = 1.0 / (settings.rate_hz * settings.speed), 1.0 / settings.rate_hz
    try:
        for frame in iter_frames(settings, epoch, command):
            while slow and slow[0][1] <= frame.t:
                slow.pop(0)
            if frame.index:
                due += slow_step if slow and slow[0][0] <= frame.t else fast_step
            delay = due - time.monotonic()
            if (delay > 0 and stop.wait(delay)) or stop.is_set():
                break
            # Commands written during this wait take effect from the next sample.
            for line in device.read_lines():
                if command.feed(line):
                    report.commands_applied += 1
                else:
                    report.commands_rejected += 1
            report.frames += 1
            if not frame.is_device_present:
                report.samples_while_vanished += 1
                if device.is_open:
                    device.close()
                    report.vanishes += 1
                    log.info("simulator: device vanished at t=%.3f s", frame.t)
                continue
            if not device.is_open:
                path = device.open()
                log.info("simulator: device at %s%s", path, _link_text(settings.link))
                if on_ready is not None:
                    on_ready(path)
            if frame.line is None:
                report.lines_withheld += 1
            elif device.write(frame.line) or (
                # Fast-forwarded, a full pty means a reader a few milliseconds behind,
                # not a device nobody reads: wait for it rather than lose hours of data.
                settings.speed > 1
                and device.wait_writable(FAST_FORWARD_WAIT_S)
                and device.write(frame.line)
            ):
                report.lines_written += 1
            else:
                report.lines_dropped_buffer_full += 1
    finally:
        device.close()
    return report


def _real_time_spans(
    settings: SimulatorSettings, kinds: frozenset[FaultKind]
) -> list[tuple[float, float]]:
    """[from, to) in simulated seconds of the faults of ``kinds``, widened by the margin."""
    spans = []
    for fault in settings.faults:
        if fault.kind in kinds:
            first = fault.first_sample(settings.rate_hz) / settings.rate_hz
            end = fault.end_sample(settings.rate_hz)
            last = math.inf if end is None else end / settings.rate_hz
            spans.append((first - REAL_TIME_MARGIN_S, last + REAL_TIME_MARGIN_S))
    return sorted(spans)


def _link_text(link: Path | None) -> str:
    return "" if link is None else f" (link {link})"
