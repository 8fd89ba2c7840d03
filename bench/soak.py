"""Soak: simulator → agent → cloud as real processes for a simulated day (or longer),
with faults, an OTA release, a cloud outage and a cloud restart (kill -9).

`edge-agent simulate` fast-forwards the pump (``--speed`` simulated seconds per wall
second, device timestamps on, so the agent keeps the simulated time); `edge-agent run`
reads it from the pty with [sync] and [ota] on; `cloud-sync serve` ingests. What is
printed, for the agent process:

- RSS after warm-up and at the end (target growth < 5 MB), and its peak;
- open file descriptors after warm-up and at the end (target: flat);
- the store's files against ``max_bytes``, and its readings;
- CPU seconds per simulated second, i.e. the share of one core at 4 channels × 10 Hz
  (at fast-forward the same work is done ``speed`` times faster);
- bytes written to storage (/proc/<pid>/io write_bytes) per simulated day. At
  fast-forward a flush carries ``speed`` times more readings than in real time, so this
  figure is a lower bound: bench/writes.py measures it in real time.

``--speed 1 --hours 0.4`` is a real-time soak (the "grows 118 → 124 MB in 15 minutes"
question): RSS is then sampled every minute and printed as a series.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from _procs import answers, child, cli

from edge_agent.model.shipped import DEFAULT_BUNDLE
from edge_agent.simulator import CHANNELS
from edgetwin_common.testing import free_port, wait_until
from edgetwin_contracts.manifest import MANIFEST_FILE

DEVICE = "soak-pump"
ADMIN_TOKEN = "soak-admin-token-0123456789abcdef"
RATE_HZ = 10.0
GUARD_S = 120.0


@dataclass
class ProcSample:
    """One look at a process through /proc."""

    at: float
    rss_mb: float
    hwm_mb: float
    fds: int
    cpu_s: float
    write_bytes: int


def proc_sample(pid: int) -> ProcSample:
    status = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        status[key] = value
    io = dict(line.split(": ") for line in Path(f"/proc/{pid}/io").read_text().splitlines() if line)
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return ProcSample(
        at=time.monotonic(),
        rss_mb=int(status["VmRSS"].split()[0]) / 1024,
        hwm_mb=int(status["VmHWM"].split()[0]) / 1024,
        fds=len(os.listdir(f"/proc/{pid}/fd")),
        # utime, stime: fields 14 and 15 of stat (11 and 12 after the comm field).
        cpu_s=(int(stat[11]) + int(stat[12])) / ticks,
        write_bytes=int(io["write_bytes"]),
    )


@dataclass
class Cloud:
    """`cloud-sync serve` on an SQLite file, restartable on the same port."""

    workdir: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def config(self) -> Path:
        return self.workdir / "cloud.toml"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def setup(self) -> str:
        """Keys, config, the device registered; returns its token."""
        keys = self.workdir / "keys"
        subprocess.run(
            cli("cloud_sync", "releases", "keygen", str(keys)), check=True, capture_output=True
        )
        self.config.write_text(
            f'[database]\nurl = "sqlite:///{self.workdir / "cloud.db"}"\n\n'
            f'[auth]\nadmin_token = "{ADMIN_TOKEN}"\n\n'
            f'[releases]\npublic_key = "{keys / "release.pub"}"\n'
            f'private_key = "{keys / "release.key"}"\nevaluate_interval_s = 5\n'
        )
        return self.cli("devices", "add", DEVICE).strip().splitlines()[-1]

    def cli(self, *args: str) -> str:
        done = subprocess.run(
            cli("cloud_sync", *args, "--config", str(self.config)),
            cwd=self.workdir,
            capture_output=True,
            text=True,
            timeout=GUARD_S,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"cloud-sync {' '.join(args)}: {done.stderr[-2000:]}")
        return done.stdout

    def start(self) -> None:
        self.starts += 1
        log = self.workdir / f"cloud-{self.starts}.log"
        with log.open("wb") as sink:
            self.proc = subprocess.Popen(
                [
                    *cli(
                        "cloud_sync",
                        "serve",
                        "--config",
                        str(self.config),
                        "--port",
                        str(self.port),
                    ),
                    "--log-level",
                    "warning",
                ],
                cwd=self.workdir,
                stdout=sink,
                stderr=subprocess.STDOUT,
            )
        wait_until(self._is_ready, f"cloud {self.url}/ready", timeout_s=GUARD_S)

    def _is_ready(self) -> bool:
        assert self.proc is not None and self.proc.poll() is None, "cloud exited"
        try:
            return httpx.get(f"{self.url}/ready", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(GUARD_S)

    def twin(self) -> dict[str, Any]:
        answer = httpx.get(
            f"{self.url}/v1/devices/{DEVICE}/twin",
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
            timeout=10,
        )
        answer.raise_for_status()
        twin: dict[str, Any] = answer.json()
        return twin


def agent_toml(tmp: Path, link: Path, port: int, cloud: Cloud, token: str, pub: Path) -> str:
    fields = "\n".join(f'[sources.fields.{c}]\nchannel = "{c}"' for c in CHANNELS)
    csv_fields = json.dumps(["ts", *CHANNELS])
    return f"""
[agent]
name = "{DEVICE}"
data_dir = "{tmp / "agent"}"
log_format = "text"
log_level = "warning"

[[sources]]
type = "serial"
name = "pump0"
port = "{link}"
format = "csv"
csv_fields = {csv_fields}
timestamp_field = "ts"
backoff = {{ initial_s = 0.2, max_s = 1.0 }}
{fields}

# The alarms of the install template (edge_agent/install/data/agent.toml).
[[alarms]]
name = "anomaly"
channel = "*"
type = "score_above"
set = 100.0
warmup_s = 1800.0
clear = 1.0
off_delay_s = 60.0

[[alarms]]
name = "sensor-health"
channel = "*"
type = "health"
conditions = ["stale", "stuck", "disconnected"]
on_delay_s = 2.0

[store]
max_bytes = {64 << 20}

[sync]
enabled = true
url = "{cloud.url}"
token = "{token}"
interval_s = 2
timeout_s = 10
backoff = {{ initial_s = 0.5, max_s = 5 }}

[ota]
release_public_key = "{pub}"

[http]
port = {port}
"""


def simulator_argv(link: Path, hours: float, speed: float, faults: bool = True) -> list[str]:
    """The pump for ``hours`` simulated, with faults spread over the run (simulated
    seconds): spikes, an overheating, dropouts, garbage, the device vanishing twice."""
    day = hours * 3600
    scheduled = [
        f"spike@{day * 0.10:.0f}s,channel=vibration",
        f"dropout@{day * 0.20:.0f}s:120s",
        f"vanish@{day * 0.35:.0f}s:30s",
        f"overheat@{day * 0.55:.0f}s:1800s,rate=5",
        f"garbage@{day * 0.65:.0f}s:600s",
        f"stuck@{day * 0.75:.0f}s:600s,channel=current",
        f"vanish@{day * 0.85:.0f}s:10s",
    ]
    argv = cli("edge_agent", "simulate", "--rate", f"{RATE_HZ:g}", "--seed", "3")
    argv += ["--link", str(link), "--timestamps", "--duration", f"{day:.0f}"]
    argv += ["--speed", f"{speed:g}"]
    for fault in scheduled if faults else []:
        argv += ["--fault", fault]
    return argv


def publish_release(cloud: Cloud, tmp: Path, version: str) -> str:
    bundle = tmp / f"bundle-{version}"
    shutil.copytree(DEFAULT_BUNDLE, bundle)
    manifest = json.loads((bundle / MANIFEST_FILE).read_bytes())
    manifest["model"]["version"] = version
    (bundle / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2, sort_keys=True))
    return cloud.cli(
        "releases", "publish", str(bundle), "--version", version, "--device", DEVICE, "--sign"
    ).strip()


def status(port: int) -> dict[str, Any]:
    answer = httpx.get(f"http://127.0.0.1:{port}/status", timeout=10)
    answer.raise_for_status()
    found: dict[str, Any] = answer.json()
    return found


@dataclass
class Soak:
    """The run's schedule (fractions of the wall time) and what it saw."""

    hours: float
    speed: float
    tmp: Path
    samples: list[tuple[float, ProcSample]] = field(default_factory=list)
    tick_s: float = 5.0
    events: list[str] = field(default_factory=list)

    @property
    def wall_s(self) -> float:
        return self.hours * 3600 / self.speed

    def note(self, text: str, t0: float) -> None:
        line = f"[{time.monotonic() - t0:7.1f} s] {text}"
        self.events.append(line)
        print(line, flush=True)


def run(soak: Soak) -> None:
    tmp = soak.tmp
    cloud = Cloud(tmp)
    token = cloud.setup()
    cloud.start()
    link, port = tmp / "pump0", free_port()
    config = tmp / "agent.toml"
    config.write_text(agent_toml(tmp, link, port, cloud, token, tmp / "keys" / "release.pub"))
    sim_argv = simulator_argv(link, soak.hours, soak.speed)
    try:
        with (
            child(sim_argv, tmp / "simulator.log") as sim,
            child(cli("edge_agent", "run", "--config", str(config)), tmp / "agent.log") as agent,
        ):
            wait_until(lambda: answers(port), "agent /ready", timeout_s=GUARD_S)
            schedule(soak, cloud, agent, sim, port)
            final = status(port)
            twin = cloud.twin()
    finally:
        cloud.stop()
    report(soak, final, twin)


def schedule(
    soak: Soak,
    cloud: Cloud,
    agent: subprocess.Popen[bytes],
    sim: subprocess.Popen[bytes],
    port: int,
) -> None:
    """Sample the agent every ``tick`` s; at fixed fractions of the run: the OTA release
    (0.25), a cloud outage (0.40 to 0.50), a cloud kill -9 and restart (0.70)."""
    t0 = time.monotonic()
    tick = soak.tick_s = min(60.0, max(5.0, soak.wall_s / 60))
    todo = [(0.25, "release"), (0.40, "outage"), (0.50, "back"), (0.70, "kill")]
    while sim.poll() is None:
        if agent.poll() is not None:
            raise RuntimeError(f"agent exited {agent.returncode}: see {soak.tmp / 'agent.log'}")
        frac = (time.monotonic() - t0) / soak.wall_s
        while todo and frac >= todo[0][0]:
            _, what = todo.pop(0)
            if what == "release":
                soak.note(publish_release(cloud, soak.tmp, "2.0.0-soak"), t0)
            elif what == "outage":
                cloud.stop()
                soak.note("cloud stopped (outage)", t0)
            elif what == "back":
                cloud.start()
                soak.note("cloud started again", t0)
            else:
                cloud.stop(signal.SIGKILL)
                cloud.start()
                soak.note("cloud killed (-9) and restarted", t0)
        sample = proc_sample(agent.pid)
        soak.samples.append((frac, sample))
        if len(soak.samples) % 5 == 1:
            soak.note(
                f"{frac:4.0%} RSS {sample.rss_mb:6.1f} MB, {sample.fds} fds, "
                f"CPU {sample.cpu_s:7.1f} s, written {sample.write_bytes / 1e6:8.1f} MB",
                t0,
            )
        time.sleep(tick)
    # The simulator has stopped: let the agent flush and the sync catch up.
    wait_until(
        lambda: sum(status(port)["sync"]["backlog"].values()) == 0,
        "sync backlog drained",
        timeout_s=GUARD_S,
    )
    soak.samples.append((1.0, proc_sample(agent.pid)))


def report(soak: Soak, final: dict[str, Any], twin: dict[str, Any]) -> None:
    warm = next(s for f, s in soak.samples if f >= 0.10)
    end = soak.samples[-1][1]
    details = final["store"]["details"]
    sim_days = soak.hours / 24
    sim_s = soak.hours * 3600
    cpu = (end.cpu_s - warm.cpu_s) / (sim_s * (1 - 0.10))
    print()
    print(f"soak: {soak.hours:g} h simulated at {soak.speed:g}x ({soak.wall_s / 60:.1f} min)")
    print(
        f"RSS after warm-up {warm.rss_mb:.1f} MB, at the end {end.rss_mb:.1f} MB: growth "
        f"{end.rss_mb - warm.rss_mb:+.1f} MB (target < 5 MB); peak {end.hwm_mb:.1f} MB"
    )
    if soak.speed == 1:
        series = " ".join(f"{s.rss_mb:.1f}" for _, s in soak.samples)
        print(f"RSS series (MB, one every {soak.tick_s:.0f} s): {series}")
    print(f"open fds after warm-up {warm.fds}, at the end {end.fds} (target: flat)")
    print(
        f"store {details['file_bytes'] / 1e6:.1f} MB of max_bytes {(64 << 20) / 1e6:.1f} MB, "
        f"{details['reading_rows']} readings; deleted by age {details['readings_deleted_age']},"
        f" by size {details['readings_deleted_size']}"
    )
    print(
        f"CPU {cpu:.1%} of one core at 4 channels x 10 Hz "
        f"({end.cpu_s:.0f} s CPU for {sim_s:.0f} simulated s)"
    )
    per_day = end.write_bytes / sim_days
    print(
        f"written to storage {end.write_bytes / 1e6:.1f} MB, {per_day / 1e6:.0f} MB per "
        f"simulated day (lower bound at {soak.speed:g}x; bench/writes.py: real time)"
    )
    sync = final["sync"]
    model = (twin.get("reported") or {}).get("model", {})
    print(f"sync: state {sync.get('state')}, backlog {sync.get('backlog')}")
    print(f"model the cloud sees installed: {model.get('version', model)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hours", type=float, default=24.0, help="simulated hours")
    parser.add_argument("--speed", type=float, default=144.0, help="simulated s per wall s")
    parser.add_argument("--keep", type=Path, help="work in this folder and keep it")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    # A SIGTERM unwinds like Ctrl-C: the child processes are stopped on the way out.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
        run(Soak(args.hours, args.speed, args.keep))
        return
    with tempfile.TemporaryDirectory(prefix="bench-soak-") as tmp:
        run(Soak(args.hours, args.speed, Path(tmp)))


if __name__ == "__main__":
    main()
