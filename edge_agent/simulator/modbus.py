"""Simulated Modbus devices, served by a real pymodbus server over RTU on a pty pair or
over TCP: the Modbus source's test device, shipped in the package (the way gpiozero ships
its MockFactory) so tests, benchmarks and dry runs share it.

``ModbusBus`` links two pseudo-terminals with socat (the serial cable), serves one or
more simulated devices on one end with pymodbus' ``ModbusSerialServer`` (RTU framer)
in a thread with its own event loop, and leaves the other end for the client. Values
are served live through the ``SimDevice`` action hook, which rewrites the registers on
each request. A device can be silenced (it vanishes from the bus), made to answer with
a bad CRC, or the whole bus cut (socat killed: the adapter unplugged).
``modbus_tcp_gateway`` serves devices over Modbus TCP instead (a gateway).

Needs socat for the RTU bus (``SocatMissing`` without it); ``has_socat()`` says.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pymodbus import FramerType
from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from edge_agent.simulator.errors import SimulatedBusFailed, SocatMissing
from edge_agent.sources.modbus.config import ByteOrder
from edge_agent.sources.modbus.config import DataType as ValueType
from edge_agent.sources.modbus.decode import encode_value
from edgetwin_common.testing import free_port

__all__ = [
    "ModbusBus",
    "SimulatedDevice",
    "energy_meter",
    "has_socat",
    "modbus_bus",
    "modbus_tcp_gateway",
    "th_transmitter",
]

START_TIMEOUT_S = 5.0
"""How long socat or a server may take to come up (or down) before it counts as failed."""


async def _shutdown(server: Any) -> None:
    # pymodbus' servers are untyped.
    await server.shutdown()


def has_socat() -> bool:
    """Whether socat, which the RTU bus needs, is installed."""
    return shutil.which("socat") is not None


# Holding and input registers live in separate tables (non-shared blocks), as on most
# field devices; SimDevice takes them in this order.
COILS, DISCRETE, HOLDING, INPUT = range(4)


@dataclass
class SimulatedDevice:
    """One slave: its register tables and what it does to requests.

    values: (table, address) -> callable returning the words (or bits) served there now.
    is_silent: drop every request (the device left the bus).
    is_crc_broken: answer with the CRC's last byte flipped.
    on_write: called with (address, words) for each write to its holding registers
        (functions 6 and 16) before they are stored: an ExcCodes refuses the write (the
        master gets that exception answer), None takes it.
    """

    slave: int
    tables: tuple[list[SimData], list[SimData], list[SimData], list[SimData]]
    values: dict[tuple[int, int], Callable[[], list[int] | list[bool]]] = field(
        default_factory=dict
    )
    is_silent: bool = False
    is_crc_broken: bool = False
    requests: int = 0
    on_write: Callable[[int, list[int]], ExcCodes | None] | None = None

    def sim_device(self) -> SimDevice:
        async def action(
            function_code: int,
            start_address: int,
            address: int,
            count: int,
            current: list[int],
            set_values: list[int] | list[bool] | None,
        ) -> ExcCodes | None:
            self.requests += 1
            if function_code in (6, 16) and set_values is not None and self.on_write:
                # Function 6 hands over one int (0 included), function 16 a list.
                words = set_values if isinstance(set_values, list) else [set_values]
                return self.on_write(address, [int(v) for v in words])
            table = {1: COILS, 2: DISCRETE, 3: HOLDING, 4: INPUT}.get(function_code)
            for (t, at), source in self.values.items():
                if t != table:
                    continue
                words = source()
                for i, word in enumerate(words):
                    index = at + i - start_address
                    if 0 <= index < len(current):
                        current[index] = int(word)
            return None

        return SimDevice(id=self.slave, simdata=self.tables, action=action)


def _unused_bits() -> list[SimData]:
    """A table the device does not really have: pymodbus wants every table non-empty
    (bit tables of DataType.BITS), so it gets one far-off block nobody reads."""
    return [SimData(0xFF00, count=16, values=False, datatype=DataType.BITS)]


def _unused_registers() -> list[SimData]:
    return [SimData(0xFF00, count=1, values=0, datatype=DataType.REGISTERS)]


def th_transmitter(
    slave: int = 1, temperature: Callable[[], float] | None = None
) -> SimulatedDevice:
    """A temperature/humidity transmitter (the usual RS-485 T/RH probe): input registers
    0 = temperature x10 (int16, °C), 1 = relative humidity x10 (uint16, %); holding
    register 0x100 = its slave address. Address 2 and up do not exist (exception 2)."""
    temp = temperature or (lambda: 21.5)
    device = SimulatedDevice(
        slave,
        (
            _unused_bits(),
            _unused_bits(),
            [SimData(0x100, values=[slave], datatype=DataType.REGISTERS)],
            [SimData(0, count=2, values=0, datatype=DataType.REGISTERS)],
        ),
    )
    device.values[(INPUT, 0)] = lambda: encode_value(round(temp() * 10), ValueType.INT16)
    device.values[(INPUT, 1)] = lambda: [456]
    return device


def energy_meter(slave: int = 2) -> SimulatedDevice:
    """An energy meter of the common kind: holding registers of float32, word-swapped
    (least significant register first): 0 = voltage V, 2 = current A, 4 = active power
    W; 0x10 = energy Wh as uint32 (big word order); coil 0 = relay state, discrete input
    0 = tamper switch."""
    little = ByteOrder.LITTLE
    device = SimulatedDevice(
        slave,
        (
            [SimData(0, count=16, values=False, datatype=DataType.BITS)],
            [SimData(0, count=16, values=False, datatype=DataType.BITS)],
            [SimData(0, count=0x12, values=0, datatype=DataType.REGISTERS)],
            _unused_registers(),
        ),
    )
    device.values[(HOLDING, 0)] = lambda: encode_value(230.1, ValueType.FLOAT32, little)
    device.values[(HOLDING, 2)] = lambda: encode_value(4.25, ValueType.FLOAT32, little)
    device.values[(HOLDING, 4)] = lambda: encode_value(-977.5, ValueType.FLOAT32, little)
    device.values[(HOLDING, 0x10)] = lambda: encode_value(123_456_789, ValueType.UINT32)
    return device


class ModbusBus:
    """A pty pair linked by socat, a pymodbus RTU server on one end (``server_path``),
    the client's end at ``client_path`` (both links in ``folder``).

    ``plug``/``unplug`` start and kill socat, ``start_server``/``stop_server`` the
    devices' server. Raises SocatMissing (at ``plug``) without socat, SimulatedBusFailed
    when socat or the server does not come up in time.
    """

    def __init__(
        self, folder: Path, devices: list[SimulatedDevice], baudrate: int = 115200
    ) -> None:
        self.server_path = str(folder / "bus-server")
        self.client_path = str(folder / "bus-client")
        self.devices = {d.slave: d for d in devices}
        self.baudrate = baudrate
        self._socat: subprocess.Popen[bytes] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: ModbusSerialServer | None = None
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None

    # -- the cable -------------------------------------------------------------
    def plug(self) -> None:
        socat = shutil.which("socat")
        if socat is None:
            raise SocatMissing("socat is not installed (Debian package socat)")
        for path in (self.server_path, self.client_path):
            Path(path).unlink(missing_ok=True)
        self._socat = subprocess.Popen(
            [
                socat,
                f"pty,raw,echo=0,link={self.server_path}",
                f"pty,raw,echo=0,link={self.client_path}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        while not (Path(self.server_path).exists() and Path(self.client_path).exists()):
            if time.monotonic() > deadline:
                self.unplug()
                raise SimulatedBusFailed(f"socat did not create its ptys in {self.client_path}")
            time.sleep(0.01)

    def unplug(self) -> None:
        """The adapter is pulled: socat dies, both ptys vanish."""
        if self._socat is not None:
            self._socat.terminate()
            self._socat.wait(START_TIMEOUT_S)
            self._socat = None

    # -- the devices -----------------------------------------------------------
    def start_server(self) -> None:
        ready = threading.Event()

        def trace_packet(sending: bool, data: bytes) -> bytes:
            if not sending or len(data) < 2:
                return data
            device = self.devices.get(data[0])
            if device is None or device.is_silent:
                return b""
            if device.is_crc_broken:
                return data[:-1] + bytes([data[-1] ^ 0xFF])
            return data

        def run() -> None:
            async def main() -> None:
                self._loop = asyncio.get_running_loop()
                self._server = ModbusSerialServer(
                    [d.sim_device() for d in self.devices.values()],
                    framer=FramerType.RTU,
                    port=self.server_path,
                    baudrate=self.baudrate,
                    trace_packet=trace_packet,
                    # A slave address nobody has is silence on a real bus.
                    ignore_missing_devices=True,
                )
                serve = asyncio.create_task(self._server.serve_forever())
                ready.set()
                await serve

            try:
                asyncio.run(main())
            except BaseException as exc:  # surfaced by stop()
                self.error = exc
            finally:
                ready.set()

        self._thread = threading.Thread(target=run, name="modbus-server", daemon=True)
        self._thread.start()
        if not ready.wait(START_TIMEOUT_S):
            raise SimulatedBusFailed("the pymodbus RTU server did not start")

    def stop_server(self) -> None:
        loop, server = self._loop, self._server
        if loop is not None and server is not None and not loop.is_closed():
            future = asyncio.run_coroutine_threadsafe(_shutdown(server), loop)
            future.result(START_TIMEOUT_S)
        if self._thread is not None:
            self._thread.join(START_TIMEOUT_S)
            if self._thread.is_alive():
                raise SimulatedBusFailed("the pymodbus RTU server did not stop")
        self._thread = None
        self._server = None
        self._loop = None


@contextmanager
def modbus_bus(
    folder: Path, devices: list[SimulatedDevice], baudrate: int = 115200
) -> Iterator[ModbusBus]:
    """socat + the server running (pty links in ``folder``); both stopped on exit.
    Raises SocatMissing without socat."""
    bus = ModbusBus(folder, devices, baudrate)
    bus.plug()
    try:
        bus.start_server()
        yield bus
    finally:
        bus.stop_server()
        bus.unplug()


@contextmanager
def modbus_tcp_gateway(devices: list[SimulatedDevice], port: int = 0) -> Iterator[int]:
    """A pymodbus Modbus TCP server (a gateway) on 127.0.0.1:``port`` (0: a free one);
    yields its port. Raises SimulatedBusFailed when it does not start in time."""
    port = port or free_port()
    ready = threading.Event()
    state: dict[str, object] = {}

    def run() -> None:
        async def main() -> None:
            server = ModbusTcpServer([d.sim_device() for d in devices], address=("127.0.0.1", port))
            state["loop"], state["server"] = asyncio.get_running_loop(), server
            serve = asyncio.create_task(server.serve_forever())
            await asyncio.sleep(0.05)
            ready.set()
            await serve

        asyncio.run(main())

    thread = threading.Thread(target=run, name="modbus-tcp", daemon=True)
    thread.start()
    if not ready.wait(START_TIMEOUT_S):
        raise SimulatedBusFailed("the pymodbus TCP server did not start")
    try:
        yield port
    finally:
        loop = state["loop"]
        server = state["server"]
        if isinstance(loop, asyncio.AbstractEventLoop) and isinstance(server, ModbusTcpServer):
            shutdown = asyncio.run_coroutine_threadsafe(_shutdown(server), loop)
            shutdown.result(START_TIMEOUT_S)
        thread.join(START_TIMEOUT_S)
