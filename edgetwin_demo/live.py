"""The demo's first part: the simulated pump live on a pty, the agent on it, then what
happened.

Everything runs on embedded defaults: the simulator writes CSV lines to a real
pseudo-terminal (read through pyserial like a USB device), the agent runs the shipped
model with a config built here, and faults are scheduled at fixed fractions of the run:
a vibration spike, then a bearing overheating, then the device vanishing for 4 s. The
pump's thermal time constant is shortened to 20 s so a one-minute demo shows a whole
overheating. The summary lists each fault and the alarms it raised, with lead times.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
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
    serial_config_for,
)
from edgetwin_common.testing import free_port
from edgetwin_demo.cloud import DemoCloud

DEVICE = "demo-pump"
PROGRESS_EVERY_S = 5.0
LIMIT_ABOVE_ONSET_C = 5.0
"""The bearing limit sits this far above its temperature when the fault begins."""


@dataclass(frozen=True, slots=True)
class DemoPlan:
    settings: SimulatorSettings
    limit_c: float
    spike_s: float
    overheat_s: float
    vanish_s: float
    vanish_for_s: float


def plan(duration_s: float, rate_hz: float, link: Path) -> DemoPlan:
    # The spike waits until the vibration score is warm (window + warm-up, ~2.5 s at 20 Hz);
    # the device comes back before the end, so the reconnect shows in short runs too.
    spike_s = max(5.0, duration_s / 6)
    overheat_s = max(duration_s / 3, spike_s + 2.0)
    vanish_s, vanish_for_s = duration_s * 0.8, min(4.0, duration_s / 10)
    settings = SimulatorSettings(
        rate_hz=rate_hz,
        seed=7,
        link=link,
        params=PumpParams(bearing_tau_s=20.0),
        faults=(
            parse_fault(f"spike@{spike_s:g}s,channel=vibration"),
            parse_fault(f"overheat@{overheat_s:g}s,rate=30"),
            parse_fault(f"vanish@{vanish_s:g}s:{vanish_for_s:g}s"),
        ),
    )
    # The limit comes from the ground truth, so any seed or rate gives a crossing.
    frames = generate_series(settings, overheat_s + 1.0)
    onset = next(f for f in frames if f.t >= overheat_s)
    limit = round(onset.truth.bearing_temp + LIMIT_ABOVE_ONSET_C, 1)
    return DemoPlan(settings, limit, spike_s, overheat_s, vanish_s, vanish_for_s)


def demo_config(
    p: DemoPlan,
    port_path: str,
    workdir: Path,
    http_port: int,
    cloud: DemoCloud | None = None,
    token: str = "",
) -> AgentConfig:
    source = serial_config_for(
        p.settings, port_path, name="pump0", backoff={"initial_s": 0.1, "max_s": 0.5}
    )
    data: dict[str, Any] = {
        "agent": {"name": DEVICE, "data_dir": str(workdir), "log_format": "text"},
        "sources": [source.model_dump(mode="json")],
        "channel_defaults": {"cleaning": {"stale_after_s": 2.0}},
        "channels": {
            # Bearing heat is slow: 2 samples/s stretch the model's 16-step horizon to 8 s.
            "bearing_temp": {
                "unit": "°C",
                "sample_period_s": 0.5,
                "cleaning": {"stale_after_s": 2.0, "min": -40, "max": 150},
            },
            "vibration": {"unit": "mm/s", "cleaning": {"stale_after_s": 2.0}},
            "current": {"unit": "A", "cleaning": {"stale_after_s": 2.0}},
            "ambient": {"unit": "°C", "cleaning": {"stale_after_s": 2.0}},
        },
        "alarms": [
            {
                "name": "bearing-hot-predicted",
                "channel": "bearing_temp",
                "type": "forecast_above",
                "set": p.limit_c,
                "clear": p.limit_c - 1.0,
                "severity": "warning",
                "message": "bearing temperature forecast to cross the limit",
            },
            {
                "name": "bearing-hot",
                "channel": "bearing_temp",
                "type": "value_above",
                "set": p.limit_c,
                "clear": p.limit_c - 1.0,
                "severity": "critical",
            },
            {
                "name": "vibration-anomaly",
                "channel": "vibration",
                "type": "score_above",
                "set": 10.0,
                "clear": 3.0,
                "off_delay_s": 2.0,
            },
            {
                "name": "sensor-health",
                "channel": "*",
                "type": "health",
                "conditions": ["disconnected", "stale"],
                "severity": "critical",
            },
        ],
        "http": {"port": http_port},
        # Short intervals so a one-minute demo shows summaries reaching the cloud.
        "store": {"summary_interval_s": 10.0},
    }
    if cloud is not None:
        data["sync"] = {
            "enabled": True,
            "url": cloud.url,
            "token": token,
            "interval_s": 2.0,
            "backoff": {"initial_s": 0.5, "max_s": 5.0},
        }
    return AgentConfig.model_validate(data)


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
        f"simulated pump: {rate_hz:g} lines/s for {duration_s:g} s; faults: vibration spike "
        f"at {p.spike_s:g} s, bearing overheating from {p.overheat_s:g} s (limit "
        f"{p.limit_c} °C), device gone at {p.vanish_s:g} s for {p.vanish_for_s:g} s"
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
    config = demo_config(p, str(p.settings.link), workdir, free_port(http_port), cloud, token)
    agent = Agent(LoadedConfig(workdir / "demo.toml", config))
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
        (p.spike_s, "FAULT  vibration spike injected"),
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
            f"crossed {p.limit_c} °C ({predicted - p.overheat_s:.1f} s after it began)"
        )
    elif predicted is not None:
        echo("the overheating was predicted; the limit was not reached before the end")
    if "vibration-anomaly" in first:
        delay = first["vibration-anomaly"] - p.spike_s
        echo(f"the vibration spike scored as an anomaly {delay:.2f} s after it happened")
    reconnects = sum(s.health.counters.get("reconnects", 0) for s in agent.sources)
    echo(f"the serial source reconnected {reconnects} time(s) by itself")
    echo(f"alarm history kept in {agent.store.path}")
