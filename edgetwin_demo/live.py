"""The demo's first part: the simulated pump live on a pty, the agent on it, then what
happened.

The agent runs examples/agent.toml as shipped (data/agent.toml here is a symlink to it,
which the wheel stores as the file itself) with only its paths, ports, serial port,
webhook URL and cloud sync changed: the example's own rules must fire. The simulator
writes CSV lines to a real pseudo-terminal (read through pyserial like a USB device) and
faults are scheduled at fixed fractions of the run: bearing wear that lifts vibration
above the example's vibration-high level, a bearing overheating whose rate is chosen from
the simulator's ground truth so the bearing crosses the example's bearing-hot level at
four fifths of the run (after the model's first full window, so bearing-hot-predicted can
come first), then the device vanishing for 3 s. The pump's thermal time constant is
shortened to 10 s so a one-minute demo shows a whole overheating. The summary lists each
fault and the alarms it raised, with lead times.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from edge_agent.alarms.model import AlarmEvent, AlarmEventKind
from edge_agent.config import AgentConfig, LoadedConfig
from edge_agent.daemon.agent import Agent
from edge_agent.simulator import (
    PumpParams,
    SimulatorSettings,
    generate_series,
    parse_fault,
    run_simulator,
)
from edgetwin_common.testing import free_port
from edgetwin_demo.cloud import DemoCloud

DEVICE = "demo-pump"
PROGRESS_EVERY_S = 5.0
WEAR_MM_S = 3.5
"""Vibration added by the wear fault: from ~1.8 mm/s to above the example's 4.5."""
WEAR_FOR_S = 3.5
CROSS_AT = 0.8
"""The bearing crosses its limit at this fraction of the run."""


def example_text() -> str:
    """examples/agent.toml, as this package ships it."""
    return resources.files("edgetwin_demo").joinpath("data/agent.toml").read_text("utf-8")


def example_data() -> dict[str, Any]:
    return tomllib.loads(example_text())


def _rule(data: dict[str, Any], name: str) -> dict[str, Any]:
    rules: list[dict[str, Any]] = data["alarms"]
    return next(r for r in rules if r["name"] == name)


@dataclass(frozen=True, slots=True)
class DemoPlan:
    settings: SimulatorSettings
    limit_c: float
    wear_s: float
    overheat_s: float
    overheat_rate: float
    vanish_s: float
    vanish_for_s: float


def _crossing(settings: SimulatorSettings, limit: float, until_s: float) -> float | None:
    frames = generate_series(settings, until_s)
    return next((f.t for f in frames if f.truth.bearing_temp >= limit), None)


def _settings(link: Path, rate_hz: float, faults: list[str]) -> SimulatorSettings:
    return SimulatorSettings(
        rate_hz=rate_hz,
        seed=7,
        link=link,
        params=PumpParams(bearing_tau_s=10.0),
        faults=tuple(parse_fault(f) for f in faults),
    )


def plan(duration_s: float, rate_hz: float, link: Path) -> DemoPlan:
    limit = float(_rule(example_data(), "bearing-hot")["set"])
    wear_s = max(3.0, duration_s * 0.12)
    overheat_s = max(duration_s * 0.2, wear_s + 2.0)
    vanish_s, vanish_for_s = duration_s * 0.87, 3.0
    cross_s = duration_s * CROSS_AT
    base = [
        f"wear@{wear_s:g}s:{WEAR_FOR_S:g}s,rate={WEAR_MM_S / WEAR_FOR_S * 60:g}",
        f"vanish@{vanish_s:g}s:{vanish_for_s:g}s",
    ]
    # The overheating rate (°C/min) comes from the ground truth, by bisection, so any
    # seed, rate or duration crosses the example's limit at CROSS_AT of the run.
    low, high = 1.0, 6000.0
    for _ in range(30):
        rate = (low + high) / 2
        settings = _settings(link, rate_hz, [*base, f"overheat@{overheat_s:g}s,rate={rate:.3f}"])
        t = _crossing(settings, limit, cross_s + 1.0)
        if t is None or t > cross_s:
            low = rate
        else:
            high = rate
    rate = round(high, 1)
    settings = _settings(link, rate_hz, [*base, f"overheat@{overheat_s:g}s,rate={rate:g}"])
    return DemoPlan(settings, limit, wear_s, overheat_s, rate, vanish_s, vanish_for_s)


def demo_config(
    port_path: str,
    workdir: Path,
    http_port: int,
    webhook_port: int,
    cloud: DemoCloud | None = None,
    token: str = "",
) -> dict[str, Any]:
    """The example config with only what a demo run must change: the device's name, its
    paths, its ports, the serial port (the simulator's pty link), the webhook URL (a closed
    port on this machine: the alarm outputs show it failing) and the sync to the demo's
    cloud."""
    data = example_data()
    data["agent"]["name"] = DEVICE
    data["agent"]["data_dir"] = str(workdir)
    data["sources"][0]["port"] = port_path
    data["actions"][0]["url"] = f"http://127.0.0.1:{webhook_port}/alarms"
    data["http"]["port"] = http_port
    if cloud is not None:
        data["sync"].update(enabled=True, url=cloud.url, token=token)
    return data


def run_live(
    duration_s: float,
    rate_hz: float,
    workdir: Path,
    http_port: int,
    cloud: DemoCloud | None,
    echo: Callable[[str], None] = print,
) -> int:
    workdir.mkdir(parents=True, exist_ok=True)
    p = plan(duration_s, rate_hz, workdir / "pump0")
    echo(
        f"simulated pump: {rate_hz:g} lines/s for {duration_s:g} s; faults: bearing wear "
        f"(vibration +{WEAR_MM_S:g} mm/s) at {p.wear_s:g} s, bearing overheating "
        f"({p.overheat_rate:g} °C/min) from {p.overheat_s:g} s, device gone at "
        f"{p.vanish_s:g} s for {p.vanish_for_s:g} s"
    )
    token = ""
    if cloud is not None:
        token = cloud.add_device(DEVICE)
        echo(f"device {DEVICE} registered with the cloud")
    sim_stop = threading.Event()
    device_ready = threading.Event()
    started = time.time()

    def on_device(path: str) -> None:
        device_ready.set()

    simulator = threading.Thread(
        target=run_simulator, args=(p.settings, sim_stop, on_device), daemon=True
    )
    simulator.start()
    if not device_ready.wait(10):
        echo("the simulator did not open its pseudo-terminal")
        return 3
    data = demo_config(
        str(p.settings.link), workdir, free_port(http_port), free_port(), cloud, token
    )
    echo(
        "agent config: examples/agent.toml as shipped, with its name, data_dir, serial port, "
        "webhook URL (a closed port), HTTP port and sync changed"
    )
    agent = Agent(LoadedConfig(workdir / "agent.toml", AgentConfig.model_validate(data)))
    events: list[AlarmEvent] = []

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        loop.call_later(duration_s, stop.set)

        def ready(a: Agent) -> None:
            url = a.http_url
            echo(f"agent running: status at {url}/status (page {url}/), metrics {url}/metrics")

        async def progress() -> None:
            while not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), PROGRESS_EVERY_S)
                active = agent.engine.active()
                names = ", ".join(sorted({a.rule for a in active})) or "none"
                echo(
                    f"  t={time.time() - started:5.1f} s  samples {agent.samples:6d}  "
                    f"active alarms: {names}"
                )

        task = asyncio.create_task(progress())
        await agent.run(stop, on_ready=ready)
        await task

    agent.alarm_listeners.append(events.append)
    try:
        asyncio.run(run())
        summarize(p, events, started, agent, echo)
        if cloud is not None:
            show_twin(cloud.twin(token), echo)
    finally:
        sim_stop.set()
        simulator.join(5)
    return 0


def show_twin(twin: dict[str, Any], echo: Callable[[str], None]) -> None:
    """The device's twin as the cloud holds it after the run."""
    reported = twin.get("reported") or {}
    model = reported.get("model") or {}
    echo(f"the cloud's twin of {twin['device']}:")
    echo(
        f"  last seen {time.time() - twin['last_seen']:.1f} s ago, "
        f"last batch #{twin['last_sequence']}, reported v{twin['reported_version']}, "
        f"desired v{twin['desired_version']}"
    )
    if model:
        echo(f"  model {model.get('name')} {model.get('version')} ({model.get('sha256', '')[:12]})")
    summaries = twin.get("last_summaries") or {}
    for channel, summary in sorted(summaries.items()):
        echo(
            f"  {channel:13s} last interval: n={summary['count']:4d} mean {summary['mean']:8.2f} "
            f"max {summary['max']:8.2f} forecast MAE {summary.get('error_mae') or 0:.3f}"
        )
    echo(f"  open alarms in the twin: {len(twin.get('open_alarms') or [])}")


def summarize(
    p: DemoPlan,
    events: list[AlarmEvent],
    started: float,
    agent: Agent,
    echo: Callable[[str], None],
) -> None:
    raised = [e for e in events if e.kind is AlarmEventKind.RAISED]
    echo("what happened (seconds from the start):")
    timeline: list[tuple[float, str]] = [
        (p.wear_s, f"FAULT  bearing wear: vibration up {WEAR_MM_S:g} mm/s"),
        (p.overheat_s, "FAULT  bearing overheating begins"),
        (p.vanish_s, f"FAULT  device unplugged for {p.vanish_for_s:g} s"),
    ]
    for event in raised:
        a = event.alarm
        timeline.append(
            (
                a.raised_at - started,
                f"ALARM  {a.rule} on {a.channel} [{a.severity.value}] {a.message}".rstrip(),
            )
        )
    for t, text in sorted(timeline):
        echo(f"  {t:6.1f}  {text}")
    first = {e.alarm.rule: e.alarm.raised_at - started for e in reversed(raised)}
    predicted, crossed = first.get("bearing-hot-predicted"), first.get("bearing-hot")
    if predicted is not None and crossed is not None:
        echo(
            f"the overheating was predicted {crossed - predicted:.1f} s before the bearing "
            f"crossed {p.limit_c:g} °C ({predicted - p.overheat_s:.1f} s after it began)"
        )
    elif predicted is not None:
        echo("the overheating was predicted; the limit was not reached before the end")
    for rule in ("vibration-rising-fast", "vibration-high"):
        if rule in first:
            echo(f"the bearing wear raised {rule} {first[rule] - p.wear_s:.1f} s after it began")
    anomaly = _rule(example_data(), "anomaly")
    if "anomaly" not in first:
        echo(
            f"the anomaly rule stayed quiet: it learns each channel's range for "
            f"{anomaly['warmup_s']:g} s (warmup_s) before it alarms"
        )
    reconnects = sum(s.health.counters.get("reconnects", 0) for s in agent.sources)
    echo(f"the serial source reconnected {reconnects} time(s) by itself")
    echo(f"alarm history kept in {agent.store.path}")
