"""MQTT beside HTTP, in one run against one `cloud-sync serve` (PostgreSQL, [mqtt] on)
and a real Mosquitto started here on a free port:

1. Ingest: the same realistic gzip batches (bench/cloud_ingest.py's generator) sent by
   ``--devices`` simulated devices over HTTP (the agent's own ``CloudClient``), then by
   as many others over MQTT (the agent's own ``MqttTransport``): one batch in flight per
   device, each waiting for the cloud's acknowledgement, as the sync worker does.
   batches/s of each, and the counts as cloud_ingest.py checks them: every (device,
   sequence) stored once, with its summaries and alarm events (0 lost, 0 duplicated).
2. Desired state: ``--desired-trials`` PATCHes through the admin API; the time from
   sending the PATCH to the desired state's arrival at the device's transport (which
   hands it to the worker's apply). p50/p99 (target p99 <= 200 ms). Over HTTP the device
   sees it at its next sync: uniform over the interval, p99 ~ 0.99 x 10 s by default.
3. Offline: a device process SIGKILLed; the time until GET /v1/devices (the fleet page's
   data) shows it offline, against its keep-alive (the broker waits 1.5x keep-alive).
4. Bytes per device per day: one device's batches through a byte-counting TCP proxy,
   over MQTT and over HTTP, scaled to a day at the 10 s sync (application bytes both
   ways; TCP/IP and TLS add about the same per exchange to both).

Needs mosquitto (Debian) and PostgreSQL on 127.0.0.1:5432 (CLOUD_INGEST_PG: conninfo).
Run: ``PYTHONPATH=. python bench/mqtt.py [--devices 100 --batches 30]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from cloud_ingest import (
    BATCHES_PER_DAY,
    DeviceBatches,
    cpu_seconds,
    database,
    db_counts,
    device_batches,
    pg_unavailable,
    register,
)

from edge_agent.sync.client import CloudClient
from edge_agent.sync.config import MqttSyncConfig
from edge_agent.sync.mqtt_transport import MqttTransport
from edgetwin_common import mosquitto
from edgetwin_common.mosquitto import Mosquitto
from edgetwin_common.testing import free_port, wait_until
from edgetwin_contracts.batch import DesiredState

ADMIN_TOKEN = "bench-mqtt-admin-token-0123456789"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
KEEPALIVE_S = 5
FAST_BACKOFF = {"initial_s": 0.1, "max_s": 1.0}


async def _ignore(_: DesiredState) -> None:
    return None


def transport(
    port: int,
    name: str,
    on_desired: Callable[[DesiredState], Awaitable[object]] = _ignore,
) -> MqttTransport:
    config = MqttSyncConfig.model_validate(
        {
            "device": name,
            "broker": {"port": port, "keepalive_s": KEEPALIVE_S, "backoff": FAST_BACKOFF},
        }
    )
    return MqttTransport(config, 60.0, on_desired)


# -- 1. ingest ---------------------------------------------------------------------


async def drive(
    devices: list[DeviceBatches], post: list[Callable[[int, bytes], Awaitable[Any]]]
) -> float:
    async def one(device: DeviceBatches, send: Callable[[int, bytes], Awaitable[Any]]) -> None:
        for sequence, body in enumerate(device.bodies, 1):
            await send(sequence, body)

    start = time.perf_counter()
    await asyncio.gather(*(one(d, p) for d, p in zip(devices, post, strict=True)))
    return time.perf_counter() - start


async def ingest_http(url: str, devices: list[DeviceBatches]) -> float:
    clients = [CloudClient(url, d.token, 60.0) for d in devices]
    try:
        return await drive(devices, [c.post_batch for c in clients])
    finally:
        await asyncio.gather(*(c.aclose() for c in clients))


async def ingest_mqtt(port: int, devices: list[DeviceBatches]) -> float:
    links = [transport(port, d.name) for d in devices]
    try:
        await asyncio.gather(*(link._connected() for link in links))  # connect, not timed
        return await drive(devices, [link.post_batch for link in links])
    finally:
        await asyncio.gather(*(link.aclose() for link in links))


def verify(url: str, devices: list[DeviceBatches], before: Any) -> tuple[bool, str]:
    after = db_counts(url)
    sent = sum(len(d.bodies) for d in devices)
    summaries = sum(sum(d.summaries) for d in devices)
    alarms = sum(sum(d.alarms) for d in devices)
    per_device_ok = all(
        after.per_device.get(d.name) == (len(d.bodies), 1, len(d.bodies)) for d in devices
    )
    got = (
        after.batches - before.batches,
        after.summaries - before.summaries,
        after.alarm_events - before.alarm_events,
    )
    ok = per_device_ok and got == (sent, summaries, alarms)
    lost = sent - got[0]
    text = (
        f"{got[0]}/{sent} batches, {got[1]}/{summaries} summaries, {got[2]}/{alarms} alarm "
        f"events stored; each device's sequences 1..n once: {per_device_ok}; "
        f"lost {max(lost, 0)}, duplicated {max(-lost, 0)}; resends answered duplicate "
        f"{after.counter_duplicates - before.counter_duplicates}"
    )
    return ok, text


# -- 2. desired state ----------------------------------------------------------------


async def desired_latencies(cloud: str, port: int, name: str, trials: int) -> list[float]:
    arrivals: dict[int, float] = {}

    async def on_desired(state: DesiredState) -> None:
        arrivals.setdefault(state.version, time.perf_counter())

    link = transport(port, name, on_desired)
    await link.get_twin()  # connected and subscribed
    latencies = []
    async with httpx.AsyncClient(base_url=cloud, headers=ADMIN, timeout=30) as admin:
        for i in range(trials):
            current = await admin.get(f"/v1/devices/{name}/desired")
            version = int(current.json()["version"])
            await asyncio.sleep(0.02)
            sent = time.perf_counter()
            patch = await admin.patch(
                f"/v1/devices/{name}/desired",
                headers={"If-Match": current.headers["ETag"]},
                json={"sync_interval_s": 10 + i % 50},
            )
            assert patch.status_code == 200, patch.text
            deadline = time.monotonic() + 30
            while version + 1 not in arrivals:
                assert time.monotonic() < deadline, "desired state never arrived"
                await asyncio.sleep(0.001)
            latencies.append(arrivals[version + 1] - sent)
    await link.aclose()
    return latencies


# -- 3. offline ----------------------------------------------------------------------

_DEVICE_PROCESS = """
import sys, time
from edgetwin_common.mqtt import BrokerConfig, Connection, Will
name, port, keepalive = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
status = f"edgetwin/{name}/status"
connection = Connection(
    BrokerConfig(port=port, keepalive_s=keepalive), f"edgetwin-device-{name}",
    on_connect=lambda c: c.publish(status, b"online", 1, True),
    will=Will(status, b"offline", 1, True),
)
connection.start()
time.sleep(3600)
"""


def presence(cloud: str, name: str) -> bool | None:
    rows = httpx.get(f"{cloud}/v1/devices", headers=ADMIN, timeout=10).json()
    found: bool | None = next(r["is_online"] for r in rows if r["name"] == name)
    return found


def offline_seconds(cloud: str, port: int, name: str) -> float:
    proc = subprocess.Popen(
        [sys.executable, "-c", _DEVICE_PROCESS, name, str(port), str(KEEPALIVE_S)],
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)},
    )
    try:
        wait_until(lambda: presence(cloud, name) is True, "the device online", 60)
        proc.send_signal(signal.SIGKILL)
        killed = time.perf_counter()
        wait_until(lambda: presence(cloud, name) is False, "the device offline", 60, 0.05)
        return time.perf_counter() - killed
    finally:
        proc.kill()
        proc.wait()


# -- 4. bytes ------------------------------------------------------------------------


class CountingProxy:
    """A TCP proxy to 127.0.0.1:``upstream`` counting the bytes each way."""

    def __init__(self, upstream: int) -> None:
        self.upstream = upstream
        self.up = 0
        self.down = 0
        self.port = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter, is_up: bool) -> None:
            try:
                while data := await src.read(65536):
                    if is_up:
                        self.up += len(data)
                    else:
                        self.down += len(data)
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, asyncio.CancelledError):
                pass
            finally:
                dst.close()

        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(pipe(reader, up_writer, True), pipe(up_reader, writer, False))


async def bytes_per_batch(
    cloud_port: int, broker_port: int, http_dev: DeviceBatches, mqtt_dev: DeviceBatches
) -> tuple[float, float]:
    http_proxy, mqtt_proxy = CountingProxy(cloud_port), CountingProxy(broker_port)
    await http_proxy.start()
    await mqtt_proxy.start()
    client = CloudClient(f"http://127.0.0.1:{http_proxy.port}", http_dev.token, 60.0)
    for sequence, body in enumerate(http_dev.bodies, 1):
        await client.post_batch(sequence, body)
    await client.aclose()
    link = transport(mqtt_proxy.port, mqtt_dev.name)
    await link._connected()
    await asyncio.sleep(0.5)  # the retained desired state and the birth: not per batch
    base = mqtt_proxy.up + mqtt_proxy.down
    for sequence, body in enumerate(mqtt_dev.bodies, 1):
        await link.post_batch(sequence, body)
    await asyncio.sleep(0.5)  # the last PUBACKs
    per_mqtt = (mqtt_proxy.up + mqtt_proxy.down - base) / len(mqtt_dev.bodies)
    await link.aclose()
    await http_proxy.stop()
    await mqtt_proxy.stop()
    per_http = (http_proxy.up + http_proxy.down) / len(http_dev.bodies)
    return per_http, per_mqtt


# ------------------------------------------------------------------------------------


def cloud_toml(path: Path, url: str, broker: Mosquitto, threads: int) -> Path:
    path.write_text(
        f'[database]\nurl = "{url}"\npool_size = {threads}\n\n[auth]\n'
        f'admin_token = "{ADMIN_TOKEN}"\n\n[mqtt]\nenabled = true\ningest_threads = {2 * threads}\n'
        f"desired_poll_s = 0.02\nbroker = {{ port = {broker.port}, keepalive_s = 30 }}\n"
    )
    return path


def serve(config: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "cloud_sync", "serve", "--config", str(config), "--port",
             str(port), "--log-level", "warning"],
            stdout=sink, stderr=subprocess.STDOUT, cwd=config.parent,
        )  # fmt: skip

    def ready() -> bool:
        assert proc.poll() is None, log.read_text()
        try:
            return httpx.get(f"http://127.0.0.1:{port}/ready", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    wait_until(ready, "cloud-sync serve", 120)
    return proc


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def measure(
    args: argparse.Namespace,
    url: str,
    cloud: str,
    port: int,
    pid: int,
    broker: Mosquitto,
    devices: list[DeviceBatches],
    extra: list[DeviceBatches],
) -> bool:
    """Run and print the four measurements; whether the counts held."""
    n = args.devices
    broker_pid = broker.pid or 0
    before = db_counts(url)
    cpu = cpu_seconds(pid)
    http_s = asyncio.run(ingest_http(cloud, devices[:n]))
    http_cpu = cpu_seconds(pid) - cpu
    http_ok, http_text = verify(url, devices[:n], before)
    before = db_counts(url)
    cpu, broker_cpu = cpu_seconds(pid), cpu_seconds(broker_pid)
    mqtt_s = asyncio.run(ingest_mqtt(broker.port, devices[n:]))
    mqtt_cpu = cpu_seconds(pid) - cpu
    broker_cpu = cpu_seconds(broker_pid) - broker_cpu
    mqtt_ok, mqtt_text = verify(url, devices[n:], before)
    sent = n * args.batches
    http_rate, mqtt_rate = sent / http_s, sent / mqtt_s
    print("\n== ingest into PostgreSQL, same cloud process, same batches ==")
    print(f"HTTP : {http_rate:8.1f} batches/s ({sent} in {http_s:.2f} s); {http_text}")
    print(f"MQTT : {mqtt_rate:8.1f} batches/s ({sent} in {mqtt_s:.2f} s); {mqtt_text}")
    print(f"MQTT / HTTP = {mqtt_rate / http_rate:.2f}x (target >= 3x)")
    print(
        f"cloud CPU per batch: HTTP {1000 * http_cpu / sent:.2f} ms, MQTT "
        f"{1000 * mqtt_cpu / sent:.2f} ms (+ mosquitto {1000 * broker_cpu / sent:.2f} ms); "
        f"ratio {http_cpu / max(mqtt_cpu + broker_cpu, 1e-9):.2f}x. The drivers (this "
        "process: the agent's own clients) share the machine's cores with the servers."
    )
    verdict = {True: "OK", False: "MISMATCH"}
    print(f"counts: HTTP {verdict[http_ok]}, MQTT {verdict[mqtt_ok]}")

    trials = args.desired_trials
    lat = asyncio.run(desired_latencies(cloud, broker.port, "bench-desired", trials))
    ms = [x * 1000 for x in lat]
    print("\n== desired state: PATCH sent -> arrival at the device's transport ==")
    print(
        f"MQTT : p50 {pct(ms, 50):.1f} ms, p99 {pct(ms, 99):.1f} ms, "
        f"max {max(ms):.1f} ms ({len(ms)} changes; target p99 <= 200 ms)"
    )
    print("HTTP : at the next sync, uniform over the 10 s interval: p50 5 s, p99 9.9 s")

    print(f"\n== offline on /v1/devices after SIGKILL (keep-alive {KEEPALIVE_S} s) ==")
    for _ in range(args.offline_trials):
        seconds = offline_seconds(cloud, broker.port, "bench-offline")
        print(f"offline after {seconds:.2f} s (the broker's limit: {1.5 * KEEPALIVE_S:.1f} s)")

    per_http, per_mqtt = asyncio.run(bytes_per_batch(port, broker.port, extra[0], extra[1]))
    print("\n== bytes per device per day (application bytes both ways, 10 s sync) ==")
    for label, per in (("HTTP", per_http), ("MQTT", per_mqtt)):
        print(f"{label} : {per:,.0f} B/batch -> {per * BATCHES_PER_DAY / 1e6:.2f} MB/day")
    return http_ok and mqtt_ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--devices", type=int, default=100)
    parser.add_argument("--batches", type=int, default=30, help="per device")
    parser.add_argument("--desired-trials", type=int, default=200)
    parser.add_argument("--offline-trials", type=int, default=3)
    parser.add_argument("--bytes-batches", type=int, default=300)
    parser.add_argument("--pool-size", type=int, default=5)
    args = parser.parse_args()
    if mosquitto.binary() is None:
        print("mosquitto missing (apt install mosquitto)")
        return 2
    problem = pg_unavailable()
    if problem is not None:
        print(f"PostgreSQL unavailable: {problem}")
        return 2
    n = args.devices
    print(f"devices {n} per transport, {args.batches} batches each, PostgreSQL")
    devices = [device_batches(i, args.batches) for i in range(2 * n)]
    bytes_src = device_batches(10_000, args.bytes_batches)
    extra = [
        DeviceBatches("bench-bytes-http", bodies=bytes_src.bodies),
        DeviceBatches("bench-bytes-mqtt", bodies=bytes_src.bodies),
        DeviceBatches("bench-desired"),
        DeviceBatches("bench-offline"),
    ]
    with (
        tempfile.TemporaryDirectory() as tmp_name,
        database("postgresql", Path(tmp_name), "mqtt") as url,
    ):
        tmp = Path(tmp_name)
        register(url, devices + extra)
        with Mosquitto(tmp / "broker") as broker:
            port = free_port()
            cloud = f"http://127.0.0.1:{port}"
            proc = serve(
                cloud_toml(tmp / "cloud.toml", url, broker, args.pool_size), port, tmp / "cloud.log"
            )
            try:
                ok = measure(args, url, cloud, port, proc.pid, broker, devices, extra)
            finally:
                proc.send_signal(signal.SIGTERM)
                proc.wait(60)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
