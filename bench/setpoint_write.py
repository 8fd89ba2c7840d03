"""The advisor's write path (issue 17, item 4): what a control write costs the event loop,
and how long until the simulated pump has the value, over Modbus TCP and RTU.

- loop time per write: the time ``action.write(value)`` holds the event loop (range,
  interlock, encoding, posting to the bus's owner), for modbus_setpoint, gpio_pwm
  (gpiozero's MockFactory) and the webhook's control (a local uvicorn receiver);
- round trip: from ``write`` to the outcome back on the event loop (the device took the
  value and, with verify, read it back), against the simulator's pump (a real pymodbus
  server): TCP with the action's own connection, and RTU on a socat pty pair at 115200
  baud, the write going through a Modbus source's poll thread that polls the pump's five
  input registers every 50 ms.

    python bench/setpoint_write.py [--writes 300]
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import numpy as np
import uvicorn
from gpiozero.pins.mock import MockFactory, MockPWMPin
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from edge_agent.actions.gpio_pwm import GpioPwmAction, GpioPwmConfig
from edge_agent.actions.modbus_setpoint import (
    ModbusSetpointAction,
    ModbusSetpointConfig,
    link_buses,
)
from edge_agent.actions.webhook import WebhookAction, WebhookActionConfig
from edge_agent.simulator import SimulatorSettings
from edge_agent.simulator.modbus import has_socat, modbus_bus, modbus_tcp_gateway
from edge_agent.simulator.modbus_pump import (
    INPUT_REGISTERS,
    SETPOINT_REGISTER,
    PumpSlave,
    run_modbus_pump,
)
from edge_agent.sources.modbus.config import ModbusSourceConfig
from edge_agent.sources.modbus.source import ModbusSource

POLL_S = 0.0002
"""How often the bench looks for the outcome: a busy loop would take the GIL from the bus
thread it waits for (the round trips' resolution)."""


def _values(count: int) -> list[float]:
    # Distinct values in the register's steps, so every write is a change.
    return [round(0.2 + 0.001 * (i % 700), 3) for i in range(count)]


def _pct(samples: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(samples), q))


async def _round_trips(action: ModbusSetpointAction, count: int) -> tuple[list[float], list[float]]:
    """(loop µs per write call, round trip ms) for ``count`` writes, one at a time."""
    loop_us, trip_ms = [], []
    for value in _values(count):
        written = action.counters["written"]
        start = time.perf_counter()
        action.write(value)
        posted = time.perf_counter()
        while action.counters["written"] == written:
            if action.counters["failed"]:
                raise SystemExit(f"a write failed: {action.health.last_error}")
            await asyncio.sleep(POLL_S)
        loop_us.append((posted - start) * 1e6)
        trip_ms.append((time.perf_counter() - start) * 1e3)
    return loop_us, trip_ms


def _report(name: str, loop_us: list[float], trip_ms: list[float] | None) -> None:
    line = f"{name:<44} loop p50 {_pct(loop_us, 50):6.1f} µs  p99 {_pct(loop_us, 99):6.1f} µs"
    if trip_ms:
        line += f"   round trip p50 {_pct(trip_ms, 50):6.2f} ms  p95 {_pct(trip_ms, 95):6.2f} ms"
    print(line, flush=True)


def _pump() -> tuple[PumpSlave, threading.Event, threading.Thread]:
    slave = PumpSlave(1)
    stop = threading.Event()
    thread = threading.Thread(
        target=run_modbus_pump, args=(SimulatorSettings(rate_hz=20.0, seed=1), slave, stop)
    )
    thread.start()
    return slave, stop, thread


def _run(coro: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(coro())


def bench_tcp(count: int, verify: bool) -> None:
    slave, stop, thread = _pump()
    try:
        with modbus_tcp_gateway([slave.device]) as port:
            config = ModbusSetpointConfig.model_validate(
                {"type": "modbus_setpoint", "name": "pump-load", "transport": "tcp",
                 "host": "127.0.0.1", "tcp_port": port, "address": SETPOINT_REGISTER,
                 "scale": 0.001, "verify": verify}
            )  # fmt: skip
            action = ModbusSetpointAction(config)

            async def main() -> None:
                await action.start()
                try:
                    loop_us, trip_ms = await _round_trips(action, count)
                finally:
                    await action.stop()
                _report(f"modbus_setpoint TCP (verify={verify})", loop_us, trip_ms)

            _run(main)
    finally:
        stop.set()
        thread.join()


def bench_rtu_shared(count: int, verify: bool) -> None:
    slave, stop, thread = _pump()
    registers = [
        {"channel": channel, "kind": "input", "address": address,
         "data_type": kind.value, "scale": scale, "period_s": 0.05}
        for channel, (address, kind, scale) in INPUT_REGISTERS.items()
    ]  # fmt: skip
    try:
        with (
            tempfile.TemporaryDirectory() as folder,
            modbus_bus(Path(folder), [slave.device]) as bus,
        ):
            source = ModbusSource(
                ModbusSourceConfig.model_validate(
                    {"type": "modbus", "name": "pump-bus", "port": bus.client_path,
                     "baudrate": 115200, "timeout_s": 0.3, "registers": registers}
                )
            )  # fmt: skip
            action = ModbusSetpointAction(
                ModbusSetpointConfig.model_validate(
                    {"type": "modbus_setpoint", "name": "pump-load", "source": "pump-bus",
                     "address": SETPOINT_REGISTER, "scale": 0.001, "verify": verify}
                )
            )  # fmt: skip
            link_buses({"pump-load": action}, [source])

            async def main() -> None:
                await action.start()
                readings = 0

                async def read() -> None:
                    nonlocal readings
                    async for _ in source.stream():
                        readings += 1

                reader = asyncio.create_task(read())
                while readings < 20:
                    await asyncio.sleep(0.01)
                try:
                    loop_us, trip_ms = await _round_trips(action, count)
                finally:
                    reader.cancel()
                    await asyncio.gather(reader, return_exceptions=True)
                    await action.stop()
                _report(f"modbus_setpoint RTU 115200, shared (verify={verify})", loop_us, trip_ms)
                counters = source.health.counters
                print(
                    f"{'':<44} source meanwhile: {readings} readings, "
                    f"{counters['timeouts']} timeouts, {counters['answers_mismatched']} "
                    "mismatched answers",
                    flush=True,
                )

            _run(main)
    finally:
        stop.set()
        thread.join()


def bench_gpio(count: int) -> None:
    factory = MockFactory(pin_class=MockPWMPin)
    action = GpioPwmAction(
        GpioPwmConfig.model_validate({"type": "gpio_pwm", "name": "vfd", "pin": 18}),
        pin_factory=factory,
    )

    async def main() -> None:
        await action.start()
        loop_us = []
        for value in _values(count):
            start = time.perf_counter()
            action.write(value)
            loop_us.append((time.perf_counter() - start) * 1e6)
        await action.stop()
        _report("gpio_pwm (MockFactory, MockPWMPin)", loop_us, None)

    _run(main)


def bench_webhook(count: int) -> None:
    received: list[dict[str, Any]] = []

    async def hook(request: Request) -> JSONResponse:
        received.append(await request.json())
        return JSONResponse({"ok": True})

    app = Starlette(routes=[Route("/control", hook, methods=["POST"])])
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{sock.getsockname()[1]}/control"
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    action = WebhookAction(
        WebhookActionConfig.model_validate(
            {"type": "webhook", "name": "plc", "url": url, "control": {}}
        )
    )

    async def main() -> None:
        await action.start()
        loop_us, trip_ms = [], []
        for value in _values(count):
            sent = action.counters["control_sent"]
            start = time.perf_counter()
            action.write(value)
            posted = time.perf_counter()
            while action.counters["control_sent"] == sent:
                await asyncio.sleep(POLL_S)
            loop_us.append((posted - start) * 1e6)
            trip_ms.append((time.perf_counter() - start) * 1e3)
        await action.stop()
        _report("webhook control (local uvicorn)", loop_us, trip_ms)

    try:
        _run(main)
    finally:
        server.should_exit = True
        thread.join(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--writes", type=int, default=300)
    args = parser.parse_args()
    count = args.writes
    print(f"{count} writes each, one at a time; loop = time the write call holds the loop")
    bench_tcp(count, verify=True)
    bench_tcp(count, verify=False)
    if has_socat():
        bench_rtu_shared(count, verify=True)
        bench_rtu_shared(count, verify=False)
    else:
        print("RTU: skipped, socat is not installed (Debian package socat)")
    bench_gpio(count)
    bench_webhook(count)


if __name__ == "__main__":
    main()
