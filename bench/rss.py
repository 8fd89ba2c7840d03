"""Memory: steady-state RSS of `edge-agent run`, and RSS growth over 1,000,000 samples.

1. `edge-agent run` as its own process on the simulated pump (a pty at 10 lines/s, four
   channels, HTTP on, the example's kind of rules), RSS read from /proc after warm-up
   and again later. Target <= 120 MB.
2. The replay pipeline over 1,000,000 samples in a fresh interpreter: RSS after the
   first 100,000 samples and at the end. Target growth < 5 MB.
3. `edge-agent replay CONFIG --csv FILE --out FILE` of 1,000,000 samples as its own
   process: its peak RSS (the kernel's ru_maxrss of that child), next to the peak of
   `edge-agent model verify` (the same imports and model, no data) measured in the same
   run. Target peak <= 150 MB.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
from _common import REPO

from edge_agent.simulator import SimulatorSettings, run_simulator, serial_config_for
from edgetwin_common.testing import free_port


def rss_mb(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of a process in MB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0]) / 1024
    return fields["VmRSS"], fields["VmHWM"]


def agent_rss(tmp: Path, seconds: float) -> None:
    link = tmp / "pump0"
    settings = SimulatorSettings(rate_hz=10.0, seed=1, link=link)
    stop = threading.Event()
    ready = threading.Event()
    sim = threading.Thread(
        target=run_simulator, args=(settings, stop, lambda _p: ready.set()), daemon=True
    )
    sim.start()
    ready.wait(10)
    source = serial_config_for(settings, str(link))
    fields = "\n".join(
        f'[sources.fields.{name}]\nchannel = "{m.channel}"' for name, m in source.fields.items()
    )
    port = free_port()
    config = tmp / "agent.toml"
    config.write_text(
        f"""
[agent]
data_dir = "{tmp}"
log_level = "warning"

[[sources]]
type = "serial"
name = "pump0"
port = "{link}"
format = "csv"
csv_fields = {source.csv_fields!r}
{fields}

[[alarms]]
name = "anomaly"
channel = "*"
type = "score_above"
set = 12.0

[[alarms]]
name = "sensor-health"
channel = "*"
type = "health"

[http]
port = {port}
""".replace("'", '"')
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "edge_agent", "run", "--config", str(config)],
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        time.sleep(seconds / 2)
        early, _ = rss_mb(proc.pid)
        for _ in range(20):  # the status page and metrics being polled, as in real use
            httpx.get(f"http://127.0.0.1:{port}/status", timeout=5)
            httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
        time.sleep(seconds / 2)
        late, peak = rss_mb(proc.pid)
        processed = httpx.get(f"http://127.0.0.1:{port}/status", timeout=5).json()["channels"]
        samples = sum(ch["processed"] for ch in processed)
    finally:
        proc.terminate()
        proc.wait(30)
        stop.set()
        sim.join(5)
    print(
        f"edge-agent run, 4 channels at 10 Hz, {samples} samples: RSS {early:.1f} MB after "
        f"{seconds / 2:g} s, {late:.1f} MB after {seconds:g} s (peak {peak:.1f} MB); "
        f"target <= 120 MB"
    )


# Run in bench/ (``python -c`` puts the working directory first on its path).
REPLAY_CHILD = r"""
import sys
from pathlib import Path
from pipeline import loaded, pump_csv, RULES
from rss import rss_mb
import os
from edge_agent.pipeline.backtest import run_backtest
tmp = Path(sys.argv[1]); rows = int(sys.argv[2])
csv = tmp / "pump.csv"
pump_csv(csv, rows)
marks = []
def progress(report):
    marks.append((report.readings, rss_mb(os.getpid())[0]))
report = run_backtest(loaded(tmp, RULES), csv, None, progress=progress)
first = next(m for m in marks if m[0] >= 100_000)
peak = rss_mb(os.getpid())[1]
print(f"{report.readings} {first[0]} {first[1]:.2f} {marks[-1][1]:.2f} {peak:.2f}")
"""


def replay_growth(tmp: Path, samples: int) -> None:
    out = subprocess.run(
        [sys.executable, "-c", REPLAY_CHILD, str(tmp), str(samples // 4)],
        cwd=REPO / "bench",
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    readings, at, rss_at, rss_end, peak = int(out[0]), int(out[1]), *map(float, out[2:])
    print(
        f"replay of {readings} samples: RSS {rss_at:.1f} MB at {at} samples, {rss_end:.1f} MB "
        f"at the end: growth {rss_end - rss_at:+.2f} MB (target < 5 MB; peak {peak:.1f} MB)"
    )


def _child_peak_mb(argv: list[str], cwd: Path) -> tuple[float, str]:
    """Run ``argv``; its peak RSS in MB (wait4's rusage: that child alone) and stdout."""
    proc = subprocess.Popen(
        argv, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    assert proc.stdout is not None
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} exited {proc.returncode}")
    return usage.ru_maxrss / 1024, out


def replay_peak(tmp: Path, samples: int) -> None:
    data = tmp / "pump.csv"
    subprocess.run(
        [
            sys.executable,
            "-c",
            "from pathlib import Path; from pipeline import pump_csv; "
            f"pump_csv(Path({str(data)!r}), {samples // 4})",
        ],
        cwd=REPO / "bench",
        check=True,
    )
    from pipeline import RULES

    config = tmp / "replay.toml"
    config.write_text(f'[agent]\ndata_dir = "{tmp}"\nlog_format = "text"\n{RULES}')
    example = tmp / "example.toml"
    # The example config as shipped but for its data folder (likelihood scores, every rule).
    example.write_text(
        (REPO / "examples" / "agent.toml")
        .read_text()
        .replace('data_dir = "/var/lib/edge-agent"', f'data_dir = "{tmp}"')
    )
    agent = [sys.executable, "-m", "edge_agent"]
    reference, _ = _child_peak_mb([*agent, "model", "verify"], tmp)
    for label, path in (("bench rules", config), ("examples/agent.toml", example)):
        peak, out = _child_peak_mb(
            [*agent, "replay", str(path), "--csv", str(data), "--out", str(tmp / "out.csv")], tmp
        )
        found = re.search(r"replayed (\d+) readings", out)
        alarms = re.search(r"alarms raised: (\d+)", out)
        print(
            f"edge-agent replay, {label}, {found.group(1) if found else '?'} readings "
            f"({alarms.group(1) if alarms else '?'} alarms, results CSV on): peak RSS "
            f"{peak:.1f} MB, {peak / reference:.2f}x `edge-agent model verify` "
            f"({reference:.1f} MB); target <= 150 MB"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=40.0)
    parser.add_argument("--samples", type=int, default=1_000_000)
    parser.add_argument(
        "--only", choices=["agent", "growth", "replay-peak"], help="one part of the three"
    )
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if args.only in (None, "agent"):
        with tempfile.TemporaryDirectory(prefix="bench-rss-") as tmp:
            agent_rss(Path(tmp), args.seconds)
    if args.only in (None, "growth"):
        with tempfile.TemporaryDirectory(prefix="bench-growth-") as tmp:
            replay_growth(Path(tmp), args.samples)
    if args.only in (None, "replay-peak"):
        with tempfile.TemporaryDirectory(prefix="bench-peak-") as tmp:
            replay_peak(Path(tmp), args.samples)


if __name__ == "__main__":
    main()
