"""The tcp source against a real TCP server on 127.0.0.1 that behaves like a serial-to-
Ethernet gateway: whoever connects gets the device's lines. Read through pyserial's
socket:// handler. Timeouts here are safety nets against hangs, never assertions."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from pydantic import ValidationError

from edge_agent.reading import Reading
from edge_agent.sources.base import SourceState
from edge_agent.sources.registry import build_source
from edge_agent.sources.tcp import COUNTERS, TcpSource, TcpSourceConfig
from edgetwin_common.testing import free_port

SAFETY_S = 20.0


class Gateway:
    """A TCP server writing ``line(n)`` (n = 0, 1, ...) every ``period_s`` to each client,
    as ser2net or a Moxa NPort passes a device's serial output on. ``is_silent``: keep
    the connection open but send nothing (a gateway that rebooted behind a NAT)."""

    def __init__(self, line: Callable[[int], bytes], period_s: float = 0.005) -> None:
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._server.getsockname()[1]
        self._line = line
        self._period_s = period_s
        self._stop = threading.Event()
        self._clients: list[socket.socket] = []
        self.connections = 0
        self.is_silent = False
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._server.accept()
            except OSError:
                return  # closed
            self.connections += 1
            self._clients.append(client)
            threading.Thread(target=self._write, args=(client,), daemon=True).start()

    def _write(self, client: socket.socket) -> None:
        n = 0
        while not self._stop.wait(self._period_s):
            if self.is_silent:
                continue
            try:
                client.sendall(self._line(n))
            except OSError:
                return  # the client went away, or drop_clients
            n += 1

    def drop_clients(self) -> None:
        """The gateway closes every connection (as on a restart of its service)."""
        clients, self._clients = self._clients, []
        for client in clients:
            with contextlib.suppress(OSError):  # the agent may have hung up already
                client.shutdown(socket.SHUT_RDWR)
            client.close()

    def close(self) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):
            self._server.shutdown(socket.SHUT_RDWR)  # wakes the accept (close alone does not)
        self._server.close()
        self.drop_clients()
        self._thread.join(SAFETY_S)


@pytest.fixture
def gateway() -> Iterator[Gateway]:
    server = Gateway(lambda n: f"seq={n} temp={20 + n % 10}.5\r\n".encode())
    yield server
    server.close()


def config(gateway_port: int, **extra: Any) -> TcpSourceConfig:
    return TcpSourceConfig.model_validate(
        {
            "type": "tcp",
            "name": "gw",
            "host": "127.0.0.1",
            "port": gateway_port,
            "format": "kv",
            "fields": {"seq": {"channel": "seq"}, "temp": {"channel": "temp"}},
            "read_timeout_s": 0.1,
            "backoff": {"initial_s": 0.02, "max_s": 0.1},
            **extra,
        }
    )


def run_until(source: TcpSource, condition: Callable[[list[Reading]], bool]) -> list[Reading]:
    """Stream from the source until ``condition(readings)`` holds."""
    readings: list[Reading] = []

    async def consume() -> None:
        async for reading in source.stream():
            readings.append(reading)
            if condition(readings):
                return

    async def main() -> None:
        consumer = asyncio.ensure_future(consume())
        while not consumer.done():
            # Conditions on health (no reading comes) are checked between readings too.
            if condition(readings):
                consumer.cancel()
                break
            await asyncio.sleep(0.01)
        await asyncio.gather(consumer, return_exceptions=True)

    asyncio.run(asyncio.wait_for(main(), SAFETY_S))
    return readings


def test_lines_from_the_gateway_become_readings(gateway: Gateway) -> None:
    source = build_source(config(gateway.port))
    assert isinstance(source, TcpSource)
    readings = run_until(source, lambda rs: len(rs) >= 40)
    seqs = [r.value for r in readings if r.channel == "seq"]
    # Consecutive lines, none lost; the first line after connecting may be cut (dropped).
    assert seqs == [seqs[0] + i for i in range(len(seqs))]
    temps = [r.value for r in readings if r.channel == "temp"]
    assert temps == [20 + (s % 10) + 0.5 for s in seqs]
    assert source.health.state is SourceState.CONNECTED
    assert source.health.counters["lines_ok"] >= 20
    # Partial: at most the first line after connecting and the one cut by the stop.
    assert source.health.counters["lines_partial"] <= 2
    assert set(source.health.counters) == set(COUNTERS)


def test_a_dropped_connection_is_opened_again(gateway: Gateway) -> None:
    source = TcpSource(config(gateway.port))
    counters = source.health.counters
    dropped: list[float] = []

    def drop_then_resume(readings: list[Reading]) -> bool:
        if not dropped and len(readings) >= 10:
            dropped.append(readings[-1].value)
            gateway.drop_clients()
        return counters["reconnects"] >= 1 and len(readings) >= 30

    run_until(source, drop_then_resume)
    assert gateway.connections >= 2
    assert counters["reconnects"] >= 1
    assert "device lost" in (source.health.last_error or "")
    assert source.health.state is SourceState.CONNECTED


def test_a_silent_connection_counts_as_lost_after_the_idle_timeout(gateway: Gateway) -> None:
    source = TcpSource(config(gateway.port, idle_timeout_s=0.3))
    counters = source.health.counters

    marks: dict[str, int] = {}

    def silence_then_back(readings: list[Reading]) -> bool:
        if len(readings) >= 10 and "silenced" not in marks:
            marks["silenced"] = len(readings)
            gateway.is_silent = True
        if gateway.connections >= 2 and "back" not in marks:
            marks["back"] = len(readings)
            gateway.is_silent = False
        return "back" in marks and len(readings) >= marks["back"] + 10

    run_until(source, silence_then_back)
    assert counters["reconnects"] >= 1
    assert counters["read_timeouts"] >= 3
    assert "no byte for" in (source.health.last_error or "")


def test_nobody_listening_is_retried_and_reported() -> None:
    source = TcpSource(config(free_port()))
    counters = source.health.counters
    run_until(source, lambda _: counters["open_failures"] >= 3)
    assert source.health.state is SourceState.DISCONNECTED
    assert "Connection refused" in (source.health.last_error or "")
    assert f"socket://127.0.0.1:{source.config.port}" in (source.health.last_error or "")


def test_config() -> None:
    ipv6 = config(4001, host="fd00::17")
    assert ipv6.url() == "socket://[fd00::17]:4001"
    assert config(4001).idle_timeout_s == 60.0
    assert config(4001, idle_timeout_s=None).idle_timeout_s is None
    for bad in ({"host": "gw/ttyUSB0"}, {"host": ""}, {"port": 0}, {"port": 70000}):
        with pytest.raises(ValidationError):
            config(4001, **bad)
    with pytest.raises(ValidationError, match="needs csv_fields"):
        config(4001, format="csv")
