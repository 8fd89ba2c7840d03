"""Realistic Modbus slaves served by a real pymodbus server over RTU on a pty pair.

``ModbusBus`` links two pseudo-terminals with socat (the serial cable), serves one or
more simulated devices on one end with pymodbus' ``ModbusSerialServer`` (RTU framer)
in a thread with its own event loop, and leaves the other end for the client. Values
are served live through the ``SimDevice`` action hook, which rewrites the registers on
each request. A device can be silenced (it vanishes from the bus), made to answer with
a bad CRC, or the whole bus cut (socat killed: the adapter unplugged).
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from pymodbus import FramerType
from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from edge_agent.sources.modbus.config import ByteOrder
from edge_agent.sources.modbus.config import DataType as ValueType
from edge_agent.sources.modbus.decode import encode_value
from tests.conftest import require

SOCAT = shutil.which("socat")

# Holding and input registers live in separate tables (non-shared blocks), as on most
# field devices; SimDevice takes them in this order.
COILS, DISCRETE, HOLDING, INPUT = range(4)


@dataclass
class SimulatedDevice:
    """One slave: its register tables and what it does to requests.

    values: (table, address) -> callable returning the words (or bits) served there now.
    is_silent: drop every request (the device left the bus).
    is_crc_broken: answer with the CRC's last byte flipped.
    """

    slave: int
    tables: tuple[list[SimData], list[SimData], list[SimData], list[SimData]]
    values: dict[tuple[int, int], Callable[[], list[int] | list[bool]]] = field(
        default_factory=dict
    )
    is_silent: bool = False
    is_crc_broken: bool = False
    requests: int = 0

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
    the client's end at ``client_path``."""

    def __init__(self, tmp_path: Path, devices: list[SimulatedDevice], baudrate: int = 115200):
        require(SOCAT is not None, "socat is not installed (Debian package socat)")
        self.server_path = str(tmp_path / "bus-server")
        self.client_path = str(tmp_path / "bus-client")
        self.devices = {d.slave: d for d in devices}
        self.baudrate = baudrate
        self._socat: subprocess.Popen[bytes] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: ModbusSerialServer | None = None
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None

    # -- the cable -------------------------------------------------------------
    def plug(self) -> None:
        assert SOCAT is not None
        for path in (self.server_path, self.client_path):
            Path(path).unlink(missing_ok=True)
        self._socat = subprocess.Popen(
            [
                SOCAT,
                f"pty,raw,echo=0,link={self.server_path}",
                f"pty,raw,echo=0,link={self.client_path}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 5.0
        while not (Path(self.server_path).exists() and Path(self.client_path).exists()):
            assert time.monotonic() < deadline, "socat did not create its ptys"
            time.sleep(0.01)

    def unplug(self) -> None:
        """The adapter is pulled: socat dies, both ptys vanish."""
        if self._socat is not None:
            self._socat.terminate()
            self._socat.wait(5.0)
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
        assert ready.wait(5.0), "the pymodbus server did not start"

    def stop_server(self) -> None:
        loop, server = self._loop, self._server
        if loop is not None and server is not None and not loop.is_closed():
            future = asyncio.run_coroutine_threadsafe(server.shutdown(), loop)
            future.result(5.0)
        if self._thread is not None:
            self._thread.join(5.0)
            assert not self._thread.is_alive(), "the pymodbus server did not stop"
        self._thread = None
        self._server = None
        self._loop = None


@contextmanager
def modbus_bus(
    tmp_path: Path, devices: list[SimulatedDevice], baudrate: int = 115200
) -> Iterator[ModbusBus]:
    """socat + the server running; both stopped on exit."""
    bus = ModbusBus(tmp_path, devices, baudrate)
    bus.plug()
    try:
        bus.start_server()
        yield bus
    finally:
        bus.stop_server()
        bus.unplug()


@contextmanager
def modbus_tcp_gateway(devices: list[SimulatedDevice]) -> Iterator[int]:
    """A pymodbus Modbus TCP server (a gateway) on 127.0.0.1; yields its port."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
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
    assert ready.wait(5.0), "the pymodbus TCP server did not start"
    try:
        yield port
    finally:
        loop = state["loop"]
        server = state["server"]
        assert isinstance(loop, asyncio.AbstractEventLoop)
        assert isinstance(server, ModbusTcpServer)
        asyncio.run_coroutine_threadsafe(server.shutdown(), loop).result(5.0)
        thread.join(5.0)
