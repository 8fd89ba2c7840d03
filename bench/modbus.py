"""Industrial I/O figures: Modbus RTU poll throughput and the agent's CPU at 10 Hz.

1. Poll throughput of the Modbus source (pymodbus client, RTU framer, pyserial) against
   a pymodbus RTU server at 115200 baud on a socat pty pair, the server in another
   process: one register per request, then blocks of 8 and 125 registers. A pty moves
   bytes as fast as the kernel copies them (no baud-rate pacing), so the wire limit at
   115200 baud 8N1 is printed alongside: what a real RS-485 line allows at most.
2. CPU of a whole agent (sources, cleaning, int8 inference per channel, alarms, SQLite,
   HTTP idle) polling 8 registers at 10 Hz (a T/RH transmitter and an energy meter) plus
   two GPIO inputs sampled at 10 Hz (a door switch and a flow meter's pulses, on
   gpiozero's MockFactory driven by a thread at 50 pulses/s), as % of one core:
   process CPU time over wall time; the Modbus server runs in its own process and is
   not counted, the pin-driving thread is.

    python bench/modbus.py [--seconds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from _common import REPO
from gpiozero import Device
from gpiozero.pins.mock import MockFactory
from pymodbus.simulator import DataType, SimData

from edge_agent.config import LoadedConfig, parse_config
from edge_agent.daemon.agent import Agent
from edge_agent.simulator.modbus import ModbusBus, SimulatedDevice, energy_meter, th_transmitter
from edge_agent.sources.modbus.config import ModbusSourceConfig
from edge_agent.sources.modbus.source import ModbusSource

BAUD = 115200


def serve(server_path: str) -> None:
    """Child process: a T/RH transmitter (slave 1) and an energy meter (slave 2), plus
    125 plain holding registers on slave 3, until killed."""
    wide = SimulatedDevice(
        3,
        (
            [SimData(0xFF00, count=16, values=False, datatype=DataType.BITS)],
            [SimData(0xFF00, count=16, values=False, datatype=DataType.BITS)],
            [SimData(0, count=250, values=7, datatype=DataType.REGISTERS)],
            [SimData(0xFF00, count=1, values=0, datatype=DataType.REGISTERS)],
        ),
    )
    bus = ModbusBus(Path(server_path).parent, [th_transmitter(1), energy_meter(2), wide], BAUD)
    bus.server_path = server_path
    bus.start_server()
    print("ready", flush=True)  # the parent waits for this line
    threading.Event().wait()


class Bus:
    """The simulator's socat pty pair, and the devices' server in a process of its own
    (so its CPU is not the agent's)."""

    def __init__(self, folder: Path) -> None:
        self.cable = ModbusBus(folder, [], BAUD)
        self.cable.plug()  # SocatMissing without socat
        self.client_path = self.cable.client_path
        self.server = subprocess.Popen(
            [sys.executable, __file__, "--serve", self.cable.server_path],
            cwd=REPO,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.server.stdout is not None
        if self.server.stdout.readline().strip() != "ready":
            raise SystemExit("the Modbus server process did not start")

    def close(self) -> None:
        self.server.terminate()
        self.server.wait(5)
        self.cable.unplug()


def wire_limit(registers_per_request: int) -> float:
    """Registers/s a 115200 baud 8N1 line allows: request 8 bytes, answer 5 + 2n bytes,
    and the 3.5-character silence that ends each RTU frame, twice."""
    chars = 8 + 5 + 2 * registers_per_request + 7
    return registers_per_request * (BAUD / 10) / chars


def throughput(client_path: str, per_request: int, seconds: float) -> tuple[float, float]:
    """(requests/s, registers/s) polling flat out, ``per_request`` registers a request."""
    config = ModbusSourceConfig.model_validate(
        {
            "type": "modbus",
            "name": "bench",
            "port": client_path,
            "baudrate": BAUD,
            "timeout_s": 0.5,
            "registers": [
                {"channel": f"r{i}", "slave": 3, "kind": "holding", "address": i,
                 "period_s": 1e-6}
                for i in range(per_request)
            ],
        }
    )  # fmt: skip
    source = ModbusSource(config)
    counters = source.health.counters

    async def run() -> float:
        started = 0.0
        first_requests = 0
        async for _ in source.stream():
            now = time.perf_counter()
            if not started and counters["requests"] >= 20:  # warmed up
                started, first_requests = now, counters["requests"]
            if started and now - started >= seconds:
                return (counters["requests"] - first_requests) / (now - started)
        return 0.0

    rate = asyncio.run(run())
    assert counters["timeouts"] == counters["crc_errors"] == 0, dict(counters)
    return rate, rate * per_request


AGENT_CONFIG = """
[agent]
name = "bench-io"
data_dir = "{data}"
log_format = "text"
log_level = "warning"

[http]
port = 0

[[sources]]
type = "modbus"
name = "rs485"
port = "{port}"
baudrate = 115200
timeout_s = 0.5

[[sources.registers]]
channel = "ambient_temp"
slave = 1
kind = "input"
address = 0
data_type = "int16"
scale = 0.1
period_s = 0.1

[[sources.registers]]
channel = "humidity"
slave = 1
kind = "input"
address = 1
scale = 0.1
period_s = 0.1
{meter}
[[sources]]
type = "gpio"
name = "io"
sample_period_s = 0.1

[[sources.inputs]]
channel = "door"
pin = 17

[[sources.inputs]]
channel = "flow"
pin = 27
kind = "pulse_rate"
scale = 0.1333
"""

METER = [
    ("voltage", "holding", 0, "float32", "little"),
    ("current", "holding", 2, "float32", "little"),
    ("power", "holding", 4, "float32", "little"),
    ("energy", "holding", 16, "uint32", "big"),
    ("relay", "coil", 0, "bool", "big"),
    ("tamper", "discrete_input", 0, "bool", "big"),
]


def agent_cpu(client_path: str, data: Path, seconds: float) -> tuple[float, int, int]:
    """(CPU % of one core, readings taken, Modbus requests) over ``seconds``."""
    meter = "".join(
        f'\n[[sources.registers]]\nchannel = "{c}"\nslave = 2\nkind = "{k}"\naddress = {a}\n'
        f'data_type = "{t}"\nword_order = "{w}"\nperiod_s = 0.1\n'
        for c, k, a, t, w in METER
    )
    text = AGENT_CONFIG.format(data=data, port=client_path, meter=meter)
    path = data / "agent.toml"
    path.write_text(text)
    factory = MockFactory()
    Device.pin_factory = factory
    agent = Agent(LoadedConfig(path, parse_config(text, str(path))))
    stop_pins = threading.Event()

    def drive_pins() -> None:  # a flow meter at 50 pulses/s, the door every 2 s
        flow, door = factory.pin(27), factory.pin(17)
        n = 0
        while not stop_pins.wait(0.02):
            flow.drive_low()
            flow.drive_high()
            n += 1
            if n % 100 == 0:
                (door.drive_low if (n // 100) % 2 else door.drive_high)()

    result: list[tuple[float, int, int]] = []

    async def main() -> None:
        stop = asyncio.Event()
        runner = asyncio.create_task(agent.run(stop))
        pins = threading.Thread(target=drive_pins, daemon=True)
        pins.start()
        await asyncio.sleep(3.0)  # warm up: windows fill, first inference done
        source = next(s for s in agent.sources if s.name == "rs485")
        samples0, requests0 = agent.samples, source.health.counters["requests"]
        cpu0, wall0 = time.process_time(), time.perf_counter()
        await asyncio.sleep(seconds)
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        result.append(
            (
                100.0 * cpu / wall,
                agent.samples - samples0,
                source.health.counters["requests"] - requests0,
            )
        )
        stop.set()
        await runner
        stop_pins.set()
        pins.join(2)

    asyncio.run(main())
    return result[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return
    with tempfile.TemporaryDirectory() as tmp:
        bus = Bus(Path(tmp))
        try:
            print(
                "Modbus RTU poll throughput, 115200 baud, pty pair (socat), "
                f"{args.seconds / 2:g} s each"
            )
            for n in (1, 8, 125):
                requests, registers = throughput(bus.client_path, n, args.seconds / 2)
                print(
                    f"  {n:>3} register(s)/request: {requests:7.0f} requests/s "
                    f"{registers:8.0f} registers/s   (115200 baud wire limit: "
                    f"{wire_limit(n):6.0f} registers/s)"
                )
            cpu, samples, requests = agent_cpu(bus.client_path, Path(tmp), args.seconds)
            print(
                f"Agent at 10 Hz, 8 registers (5 requests per round) + 2 GPIO inputs, "
                f"{args.seconds:g} s: {cpu:.1f} % of one core "
                f"({samples / args.seconds:.0f} readings/s, {requests / args.seconds:.0f} "
                "Modbus requests/s)"
            )
        finally:
            bus.close()


if __name__ == "__main__":
    main()
