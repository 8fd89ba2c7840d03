"""The simulated pump as a Modbus slave (``edge-agent simulate --modbus rtu|tcp:PORT``):
its sensors in input registers, its load setpoint in a writable holding register, served
by the real pymodbus server of ``modbus.py`` over an RTU pty pair or TCP.

Register map (unit 1 by default; docs/simulator.md, "Modbus mode"):

====================  =========  ==========================================
input register 0      int16      bearing_temp, °C x 100
input register 1      uint16     vibration, mm/s x 1000
input register 2      uint16     current, A x 100
input register 3      int16      ambient, °C x 100
input register 4      uint16     load (the drive's actual load), 0..1 x 1000
holding register 16   uint16     load setpoint, 0..1 x 1000 (1000: no limit)
====================  =========  ==========================================

A write of the setpoint above 1000 answers exception 3 (illegal data value) and is
logged; a write anywhere else in the holding table answers exception 2 (illegal data
address). The setpoint takes effect from the next sample, as a ``load=`` line does.
"""

from __future__ import annotations

import logging
import math
import os
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from pymodbus.constants import ExcCodes
from pymodbus.simulator import DataType, SimData

from edge_agent.simulator.command import LoadCommand
from edge_agent.simulator.modbus import (
    HOLDING,
    INPUT,
    SimulatedDevice,
    _unused_bits,
    modbus_bus,
    modbus_tcp_gateway,
)
from edge_agent.simulator.pump import Frame, SimulatorSettings, iter_frames
from edge_agent.sources.modbus.config import DataType as ValueType
from edge_agent.sources.modbus.decode import encode_value

__all__ = [
    "INPUT_REGISTERS",
    "SETPOINT_REGISTER",
    "SETPOINT_SCALE",
    "PumpSlave",
    "modbus_argument",
    "run_modbus_pump",
    "serve_modbus_pump",
]

log = logging.getLogger(__name__)

INPUT_REGISTERS: dict[str, tuple[int, ValueType, float]] = {
    "bearing_temp": (0, ValueType.INT16, 0.01),
    "vibration": (1, ValueType.UINT16, 0.001),
    "current": (2, ValueType.UINT16, 0.01),
    "ambient": (3, ValueType.INT16, 0.01),
    "load": (4, ValueType.UINT16, 0.001),
}
"""Channel -> (input register, type, scale): value = register x scale."""
SETPOINT_REGISTER = 16
"""The holding register of the load setpoint."""
SETPOINT_SCALE = 0.001
"""setpoint = register x SETPOINT_SCALE; 0..1000 accepted (1000: no limit)."""
_SETPOINT_MAX_WORD = 1000
REGISTERS = DataType.REGISTERS


class PumpSlave:
    """The pump's registers over the latest frame, and its setpoint register feeding a
    ``LoadCommand``. ``publish(frame)`` from the stepping thread; the server's thread
    reads. ``rejected``: setpoint writes answered with an exception."""

    def __init__(self, slave: int = 1, command: LoadCommand | None = None) -> None:
        self.command = command if command is not None else LoadCommand()
        self.rejected = 0
        self.accepted = 0
        self._lock = threading.Lock()
        self._words = [0] * len(INPUT_REGISTERS)
        self._setpoint_word = _SETPOINT_MAX_WORD
        self.device = SimulatedDevice(
            slave,
            (
                _unused_bits(),
                _unused_bits(),
                [SimData(SETPOINT_REGISTER, values=_SETPOINT_MAX_WORD, datatype=REGISTERS)],
                [SimData(0, count=len(INPUT_REGISTERS), values=0, datatype=REGISTERS)],
            ),
            on_write=self._on_write,
        )
        self.device.values[(INPUT, 0)] = self._input_words
        self.device.values[(HOLDING, SETPOINT_REGISTER)] = self._setpoint_words

    def publish(self, frame: Frame) -> None:
        """Serve ``frame``'s reported values (and its actual load) from now on."""
        values = {**frame.reported.as_dict(), "load": frame.load}
        words = []
        for channel, (_, kind, scale) in INPUT_REGISTERS.items():
            raw = round(values[channel] / scale)
            low, high = (-32768, 32767) if kind is ValueType.INT16 else (0, 65535)
            words.extend(encode_value(min(high, max(low, raw)), kind))
        with self._lock:
            self._words = words

    def _input_words(self) -> list[int]:
        with self._lock:
            return list(self._words)

    def _setpoint_words(self) -> list[int]:
        with self._lock:
            return [self._setpoint_word]

    def _on_write(self, address: int, words: list[int]) -> ExcCodes | None:
        if address != SETPOINT_REGISTER or len(words) != 1:
            self.rejected += 1
            log.warning(
                "simulator: write to holding register %d (%d word(s)) refused: only %d, "
                "the load setpoint, is writable",
                address,
                len(words),
                SETPOINT_REGISTER,
            )
            return ExcCodes.ILLEGAL_ADDRESS
        word = words[0]
        if not 0 <= word <= _SETPOINT_MAX_WORD:
            self.rejected += 1
            log.warning(
                "simulator: load setpoint %d refused (exception 3): the register takes "
                "0..%d (x %g)",
                word,
                _SETPOINT_MAX_WORD,
                SETPOINT_SCALE,
            )
            return ExcCodes.ILLEGAL_VALUE
        with self._lock:
            self._setpoint_word = word
        self.accepted += 1
        self.command.set(None if word == _SETPOINT_MAX_WORD else word / _SETPOINT_MAX_WORD)
        log.info("simulator: load setpoint %.3f (register %d)", word * SETPOINT_SCALE, word)
        return None


def run_modbus_pump(
    settings: SimulatorSettings,
    slave: PumpSlave,
    stop: threading.Event,
    on_frame: Callable[[Frame], None] | None = None,
) -> int:
    """Step the pump on time (1x: a Modbus master stamps readings with its own clock)
    and publish each frame on ``slave`` until ``stop`` or ``duration_s``; the server
    runs elsewhere (``modbus_bus``, ``modbus_tcp_gateway``). Returns the frames stepped."""
    step = 1.0 / settings.rate_hz
    due = time.monotonic()
    frames = 0
    for frame in iter_frames(settings, time.time(), slave.command):
        slave.publish(frame)
        # A dropout or a vanish: the slave stops answering (the RTU bus drops what it
        # would send; over TCP the gateway has no such hook).
        slave.device.is_silent = frame.line is None
        frames += 1
        if on_frame is not None:
            on_frame(frame)
        due += step
        delay = due - time.monotonic()
        if stop.wait(max(0.0, delay)) or (not math.isfinite(delay)):
            break
    return frames


def modbus_argument(text: str) -> tuple[str, int]:
    """``--modbus`` values: "rtu" (a socat pty pair) or "tcp:PORT". Raises ValueError."""
    if text == "rtu":
        return "rtu", 0
    kind, _, port = text.partition(":")
    if kind == "tcp" and port.isdigit() and 0 < int(port) < 65536:
        return "tcp", int(port)
    raise ValueError(f"--modbus {text!r}: expected rtu or tcp:PORT (e.g. tcp:5020)")


def serve_modbus_pump(
    settings: SimulatorSettings,
    transport: tuple[str, int],
    unit: int,
    stop: threading.Event,
    announce: Callable[[str], None],
) -> PumpSlave:
    """Serve the pump as Modbus unit ``unit`` (RTU on a socat pty pair, the client's end
    linked at ``settings.link`` when given; or TCP on 127.0.0.1:PORT) until ``stop`` or
    ``duration_s``; ``announce`` hears where. Returns the slave (its counts). Raises
    SocatMissing (RTU without socat), SimulatedBusFailed."""
    slave = PumpSlave(unit)
    kind, port = transport
    if kind == "tcp":
        with modbus_tcp_gateway([slave.device], port=port) as bound:
            where = f"modbus tcp device (unit {unit}) at 127.0.0.1:{bound}"
            run_modbus_pump(settings, slave, stop, _once(announce, where))
        return slave
    with (
        tempfile.TemporaryDirectory(prefix="edgetwin-modbus-") as folder,
        modbus_bus(Path(folder), [slave.device], baudrate=115200) as bus,
    ):
        path = bus.client_path
        if settings.link is not None:
            settings.link.unlink(missing_ok=True)
            settings.link.symlink_to(os.path.realpath(bus.client_path))
            path = f"{path} (link {settings.link})"
        where = f"modbus rtu device (unit {unit}, 115200 8N1) at {path}"
        try:
            run_modbus_pump(settings, slave, stop, _once(announce, where))
        finally:
            if settings.link is not None and settings.link.is_symlink():
                settings.link.unlink()
    return slave


def _once(announce: Callable[[str], None], where: str) -> Callable[[Frame], None]:
    """Announce the device once its registers hold the first sample (a master that
    starts at the announcement never reads zeros)."""
    done = False

    def on_frame(frame: Frame) -> None:
        nonlocal done
        if not done:
            done = True
            announce(where)

    return on_frame
