"""Bytes the agent writes to storage per day at 4 channels × 10 Hz, in real time.

The simulated pump at 10 lines/s (4 channels) on a pty, `edge-agent run` on it with
[sync] on to a real `cloud-sync serve` (as on a device), for ``--minutes`` after a
warm-up; /proc/<pid>/io write_bytes (what reaches the block layer's accounting: the
SQLite main file, its WAL, logs) is read at both ends and extrapolated to a day.
SD-card wear target: <= 200 MB/day. The store's files are also read: how much of the
rate is the WAL and how much the checkpoints into the main file.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

from soak import Cloud, _answers, _cli, agent_toml, child, proc_sample, simulator_argv, status

from edgetwin_common.testing import free_port, wait_until

TARGET_MB_PER_DAY = 200.0


def measure(
    tmp: Path, minutes: float, warmup_s: float, sync: bool, flush_s: float | None = None
) -> float:
    cloud = Cloud(tmp)
    token = cloud.setup()
    if sync:
        cloud.start()
    link, port = tmp / "pump0", free_port()
    config = tmp / "agent.toml"
    text = agent_toml(tmp, link, port, cloud, token, tmp / "keys" / "release.pub")
    if not sync:
        text = text.replace("[sync]\nenabled = true", "[sync]\nenabled = false")
    # The sync at its default interval (10 s), as on a device; the soak syncs every 2 s.
    text = text.replace("interval_s = 2\n", "")
    if flush_s is not None:
        text = text.replace("[store]\n", f"[store]\nflush_interval_s = {flush_s:g}\n")
    config.write_text(text)
    hours = (minutes * 60 + warmup_s + 60) / 3600
    try:
        with (
            child(simulator_argv(link, hours, 1.0, faults=False), tmp / "simulator.log"),
            child(_cli("edge_agent", "run", "--config", str(config)), tmp / "agent.log") as agent,
        ):
            wait_until(lambda: _answers(port), "agent /ready", timeout_s=120)
            time.sleep(warmup_s)
            first = proc_sample(agent.pid)
            n0, b0 = _readings(port), _batches(port)
            time.sleep(minutes * 60)
            last = proc_sample(agent.pid)
            n1, b1 = _readings(port), _batches(port)
    finally:
        cloud.stop()
    elapsed = last.at - first.at
    written = last.write_bytes - first.write_bytes
    per_day = written / elapsed * 86400
    samples_s = (n1 - n0) / elapsed
    flush = "" if flush_s is None else f", flush_interval_s {flush_s:g}"
    print(
        f"sync {'on ' if sync else 'off'}{flush}: {written / 1e6:.2f} MB written in "
        f"{elapsed:.0f} s "
        f"at {samples_s:.1f} samples/s: {per_day / 1e6:.0f} MB/day "
        f"({written / max(n1 - n0, 1):.0f} bytes per sample; target <= "
        f"{TARGET_MB_PER_DAY:.0f} MB/day); CPU {(last.cpu_s - first.cpu_s) / elapsed:.1%}"
        + (f"; {(b1 - b0) / elapsed * 60:.1f} batches/min" if sync else "")
    )
    return per_day


def _readings(port: int) -> int:
    return sum(int(ch["processed"]) for ch in status(port)["channels"])


def _batches(port: int) -> int:
    return int(status(port)["sync"]["batches_sent"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--warmup", type=float, default=30.0, help="seconds before measuring")
    parser.add_argument("--no-sync", action="store_true", help="only sync off")
    parser.add_argument("--flush-interval", type=float, help="[store] flush_interval_s")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    # A SIGTERM unwinds like Ctrl-C: the child processes are stopped on the way out.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    for sync in (False,) if args.no_sync else (False, True):
        with tempfile.TemporaryDirectory(prefix="bench-writes-") as tmp:
            measure(Path(tmp), args.minutes, args.warmup, sync, args.flush_interval)


if __name__ == "__main__":
    main()
