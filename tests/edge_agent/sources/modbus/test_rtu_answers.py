"""RTU answers that are not the answer to the request: a real pty whose far end is a
device written here byte by byte, so it can send what a well-behaved pymodbus server
never does (a valid-CRC frame of another function, a late answer, another unit's frame).
The source reads it through pymodbus' client and pyserial, as in production. Timeouts
are safety nets against hangs, never assertions."""

from __future__ import annotations

import asyncio
import os
import select
import struct
import threading
import tty
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from pymodbus.framer import FramerRTU

from edge_agent.reading import Reading
from edge_agent.simulator.modbus import energy_meter, has_socat, modbus_bus, th_transmitter
from edge_agent.sources.base import SourceState
from edge_agent.sources.modbus.config import ModbusSourceConfig
from edge_agent.sources.modbus.source import ModbusSource, register_counter
from tests.conftest import require

SAFETY_S = 30.0
TIMEOUT_S = 0.4

# Two blocks of the same function and length on one unit: only the address (which an
# RTU answer does not carry) tells their answers apart.
VOLTAGE_BITS = struct.unpack(">HH", struct.pack(">f", 230.5))
ENERGY_BITS = (0x0001, 0x2345)  # uint32 74565
REGISTERS: list[dict[str, Any]] = [
    {"channel": "voltage", "slave": 1, "kind": "holding", "address": 0,
     "data_type": "float32", "period_s": 0.02},
    {"channel": "energy_wh", "slave": 1, "kind": "holding", "address": 16,
     "data_type": "uint32", "period_s": 0.02},
]  # fmt: skip

Answer = Callable[[int, int, int, int, int], list[tuple[float, bytes]]]
"""(request number, unit, function, address, count) -> [(delay_s, frame)] to send."""


def frame(*body: int) -> bytes:
    data = bytes(body)
    return data + FramerRTU.compute_CRC(data).to_bytes(2, "big")


def registers_frame(unit: int, function: int, words: tuple[int, ...]) -> bytes:
    payload = b"".join(struct.pack(">H", w) for w in words)
    return frame(unit, function, len(payload), *payload)


def correct(unit: int, function: int, address: int, count: int) -> bytes:
    words = {0: VOLTAGE_BITS, 16: ENERGY_BITS}[address]
    assert count == len(words)
    return registers_frame(unit, function, words)


class PtyDevice:
    """The far end of a pty: reads 8-byte read requests, answers as ``answer`` says."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.master, slave = os.openpty()
        tty.setraw(slave)
        self.path = os.ttyname(slave)
        self._slave = slave
        self.requests = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        buffer = b""
        while not self._stop.is_set():
            ready, _, _ = select.select([self.master], [], [], 0.05)
            if not ready:
                continue
            try:
                buffer += os.read(self.master, 256)
            except OSError:
                return
            while len(buffer) >= 8:
                request, buffer = buffer[:8], buffer[8:]
                unit, function, address, count = struct.unpack(">BBHH", request[:6])
                self.requests += 1
                for delay_s, reply in self.answer(self.requests, unit, function, address, count):
                    if self._stop.wait(delay_s):
                        return
                    os.write(self.master, reply)
                # A busy device hears nothing: what came meanwhile is lost, as on a bus.
                if select.select([self.master], [], [], 0)[0]:
                    buffer = b""
                    os.read(self.master, 4096)

    def __enter__(self) -> PtyDevice:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        os.close(self.master)
        os.close(self._slave)


def config(port: str, registers: list[dict[str, Any]], **extra: Any) -> ModbusSourceConfig:
    return ModbusSourceConfig.model_validate(
        {
            "type": "modbus",
            "name": "bus",
            "port": port,
            "baudrate": 115200,
            "timeout_s": TIMEOUT_S,
            "backoff": {"initial_s": 0.05, "max_s": 0.2},
            "offline_after_failures": 1000,
            "registers": registers,
            **extra,
        }
    )


def run_until(source: ModbusSource, condition: Callable[[], bool]) -> list[Reading]:
    async def main() -> list[Reading]:
        readings: list[Reading] = []

        async def consume() -> None:
            async for reading in source.stream():
                readings.append(reading)

        task = asyncio.create_task(consume())
        try:
            async with asyncio.timeout(SAFETY_S):
                while not condition():
                    await asyncio.sleep(0.02)
        finally:
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        return readings

    return asyncio.run(main())


@contextmanager
def device(answer: Answer) -> Iterator[PtyDevice]:
    with PtyDevice(answer) as dev:
        yield dev


def test_a_valid_crc_answer_of_another_function_is_dropped_and_counted() -> None:
    def answer(n: int, unit: int, function: int, address: int, count: int) -> list[Any]:
        if address == 16:
            # Function 4 and six bytes in answer to a function-3 read of two registers.
            return [(0.0, registers_frame(unit, 4, (0x4366, 0x8000, 0x0001)))]
        return [(0.0, correct(unit, function, address, count))]

    with device(answer) as dev:
        source = ModbusSource(config(dev.path, REGISTERS))
        counters = source.health.counters
        readings = run_until(source, lambda: counters["answers_mismatched"] >= 5)
    assert "energy_wh" not in {r.channel for r in readings}
    assert counters[register_counter("energy_wh", "answers_mismatched")] >= 5
    assert counters[register_counter("energy_wh", "reads")] == 0
    assert counters[register_counter("voltage", "answers_mismatched")] == 0
    assert {r.value for r in readings} == {230.5}
    assert "function 4 to a function 3 request" in (source.health.last_error or "")


def test_an_answer_of_another_length_is_dropped() -> None:
    def answer(n: int, unit: int, function: int, address: int, count: int) -> list[Any]:
        if address == 16:
            return [(0.0, registers_frame(unit, function, (0x0001,)))]  # 2 bytes, not 4
        return [(0.0, correct(unit, function, address, count))]

    with device(answer) as dev:
        source = ModbusSource(config(dev.path, REGISTERS))
        counters = source.health.counters
        readings = run_until(source, lambda: counters["answers_mismatched"] >= 3)
    assert "energy_wh" not in {r.channel for r in readings}
    assert "answer of 2 bytes to a request for 4" in (source.health.last_error or "")


def test_a_late_answer_is_never_taken_for_the_next_request() -> None:
    # Every third request is answered after 1.5 timeouts: without the quiet time and
    # the flush, that answer (voltage bits) arrives while the source waits for the next
    # request's (energy), and is stored as energy_wh = 1130758144.
    def answer(n: int, unit: int, function: int, address: int, count: int) -> list[Any]:
        delay = 1.5 * TIMEOUT_S if n % 3 == 0 else 0.0
        return [(delay, correct(unit, function, address, count))]

    with device(answer) as dev:
        source = ModbusSource(config(dev.path, REGISTERS))
        counters = source.health.counters
        readings = run_until(
            source, lambda: counters["timeouts"] >= 4 and counters["stale_flushes"] >= 4
        )
    values: dict[str, set[float]] = {"voltage": set(), "energy_wh": set()}
    for r in readings:
        values[r.channel].add(r.value)
    assert values == {"voltage": {230.5}, "energy_wh": {74565.0}}  # float32-exact


def test_a_frame_from_another_unit_is_not_taken() -> None:
    def answer(n: int, unit: int, function: int, address: int, count: int) -> list[Any]:
        if address == 16:
            return [(0.0, correct(unit + 1, function, 0, 2))]
        return [(0.0, correct(unit, function, address, count))]

    with device(answer) as dev:
        source = ModbusSource(config(dev.path, REGISTERS))
        counters = source.health.counters
        readings = run_until(
            source, lambda: counters[register_counter("energy_wh", "timeouts")] >= 3
        )
    assert "energy_wh" not in {r.channel for r in readings}


def test_a_single_device_lost_and_back_counts_a_recovery(tmp_path: Any) -> None:
    require(has_socat(), "socat is not installed (Debian package socat)")
    transmitter = th_transmitter(1)
    registers = [{"channel": "ambient_temp", "slave": 1, "kind": "input", "address": 0,
                  "data_type": "int16", "scale": 0.1, "period_s": 0.02}]  # fmt: skip
    with modbus_bus(tmp_path, [transmitter]) as bus:
        source = ModbusSource(config(bus.client_path, registers, offline_after_failures=2,
                                     timeout_s=0.3))  # fmt: skip
        counters = source.health.counters
        phase = ["run"]

        def lose_and_return() -> bool:
            reads = counters[register_counter("ambient_temp", "reads")]
            if phase[0] == "run" and reads >= 3:
                transmitter.is_silent = True
                phase[0] = "gone"
            elif phase[0] == "gone" and source.health.state is SourceState.DISCONNECTED:
                transmitter.is_silent = False
                phase[0] = "back"
            return phase[0] == "back" and source.health.state is SourceState.CONNECTED

        run_until(source, lose_and_return)
    assert counters["devices_lost"] == 1
    assert counters["devices_recovered"] == 1


def test_after_every_device_was_lost_the_one_that_returns_is_found(tmp_path: Any) -> None:
    # Both lost, the port closed; then only the second device returns. After the reopen
    # the first (still silent) is polled first: it must not hide the second.
    require(has_socat(), "socat is not installed (Debian package socat)")
    first, second = th_transmitter(1), energy_meter(2)
    registers = [
        {"channel": "ambient_temp", "slave": 1, "kind": "input", "address": 0,
         "data_type": "int16", "scale": 0.1, "period_s": 0.02},
        {"channel": "voltage", "slave": 2, "kind": "holding", "address": 0,
         "data_type": "float32", "word_order": "little", "period_s": 0.02},
    ]  # fmt: skip
    with modbus_bus(tmp_path, [first, second]) as bus:
        source = ModbusSource(
            config(bus.client_path, registers, offline_after_failures=2, timeout_s=0.2)
        )
        counters = source.health.counters
        phase = ["run"]

        def lose_both_then_one_returns() -> bool:
            voltage_reads = counters[register_counter("voltage", "reads")]
            if phase[0] == "run" and voltage_reads >= 2:
                first.is_silent = second.is_silent = True
                phase[0] = "gone"
            elif phase[0] == "gone" and source.health.state is SourceState.DISCONNECTED:
                phase[0] = "back"
                reads_when_back[0] = voltage_reads
                second.is_silent = False
            return phase[0] == "back" and voltage_reads >= reads_when_back[0] + 3

        reads_when_back = [0]
        run_until(source, lose_both_then_one_returns)
    assert counters["devices_lost"] == 2
    assert counters["devices_recovered"] == 1
    assert source.health.state is SourceState.CONNECTED
