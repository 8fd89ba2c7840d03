"""Part 3 of `edge-agent demo`: the advisor closes the loop.

The simulated pump loses its lubrication (the bearing's heat rises 2 °C a minute for a
quarter of an hour); left alone it would raise the 75 °C overheating alarm. The agent
reads it over a pty, its advisor (examples/twin.toml's settings) predicts the bearing
under every load limit it could set, and the setpoint action writes the highest safe one
back over the same pty (``load=0.55``): the pump is derated before the limit and the
alarm never fires. Fast-forwarded (``SPEED``), the simulator printing its own times.

The chart (``advisor.png`` in the work folder, when matplotlib is installed) sets the
run beside the same pump left alone: both are exact (the simulator is a pure function of
its seed and of the commands it received, which it records).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge_agent.config import AgentConfig, LoadedConfig
from edge_agent.daemon.agent import Agent
from edge_agent.simulator import SimulatorSettings, generate_series, iter_frames, parse_fault
from edge_agent.simulator.command import LoadCommand
from edge_agent.simulator.device import run_simulator
from edge_agent.simulator.pump import Frame
from edge_agent.simulator.source_config import serial_config_for
from edge_agent.twin.advisor.closedloop import ALARM_LIMIT_C, pump_advisor_config

__all__ = ["AdvisorDemo", "run_advisor_demo"]

SPEED = 100.0
"""Simulated seconds per wall second (one reading per simulated second)."""
DURATION_S = 2400.0
FAULT = "overheat@300s:15m,rate=2"


@dataclass
class AdvisorDemo:
    """What part 3 shows: the overheating alarm's raises (none, we hope), the run and
    the same pump left alone, the advisor's writes, and the chart's path."""

    alarms: int
    frames: list[Frame]
    alone: list[Frame]
    changes: int
    chart: Path | None


def _config(workdir: Path, settings: SimulatorSettings) -> AgentConfig:
    port = str(settings.link)
    source = serial_config_for(settings, port, backoff={"initial_s": 0.05, "max_s": 0.5})
    advisor = pump_advisor_config().model_dump(mode="json")
    return AgentConfig.model_validate(
        {
            "agent": {"name": "demo-pump-3", "data_dir": str(workdir), "log_format": "text"},
            "sources": [source.model_dump(mode="json")],
            "actions": [{"type": "setpoint", "name": "pump-load", "port": port}],
            "alarms": [
                {"name": "bearing-hot", "channel": "bearing_temp", "type": "value_above",
                 "set": ALARM_LIMIT_C, "clear": ALARM_LIMIT_C - 3, "on_delay_s": 5,
                 "severity": "critical"},
            ],
            "advisor": advisor,
            "http": {"enabled": False},
        }
    )  # fmt: skip


def run_advisor_demo(workdir: Path, echo: Callable[[str], None] = print) -> AdvisorDemo:
    """Run part 3 in ``workdir`` and print its summary."""
    workdir.mkdir(parents=True, exist_ok=True)
    settings = SimulatorSettings(
        rate_hz=1.0, seed=11, timestamps=True, speed=SPEED, report_load=True,
        link=workdir / "pump3", duration_s=DURATION_S, faults=(parse_fault(FAULT),),
    )  # fmt: skip
    echo(
        f"simulated pump, {SPEED:g}x: lubrication lost ({FAULT}); the advisor may derate it "
        f"to keep the bearing under {ALARM_LIMIT_C:g} °C"
    )
    agent = Agent(LoadedConfig(workdir / "demo-advisor.toml", _config(workdir, settings)))
    command = LoadCommand()

    async def run() -> None:
        stop = asyncio.Event()
        runner = asyncio.create_task(agent.run(stop))
        sim_stop = threading.Event()
        epoch = time.time() - DURATION_S
        simulated = asyncio.to_thread(run_simulator, settings, sim_stop, None, epoch, command)
        try:
            await simulated
        finally:
            sim_stop.set()
            stop.set()
            await runner

    asyncio.run(run())
    hot = [e for e in agent.engine.recent(500) if e.alarm.rule == "bearing-hot"]
    raised = sum(1 for e in hot if e.kind.value == "raised")
    frames = list(iter_frames(settings, command=LoadCommand.replay(command.history)))
    alone = generate_series(settings, DURATION_S)
    assert agent.advisor is not None
    changes = agent.advisor.advisor.counters["changes"]
    chart = _chart(workdir / "advisor.png", frames, alone)
    _summary(echo, frames, alone, raised, changes, chart)
    return AdvisorDemo(raised, frames, alone, changes, chart)


def _first_alarm(frames: list[Frame]) -> float | None:
    run = 0
    for f in frames:
        run = run + 1 if f.reported.bearing_temp >= ALARM_LIMIT_C else 0
        if run >= 5:
            return f.t
    return None


def _summary(
    echo: Callable[[str], None],
    frames: list[Frame],
    alone: list[Frame],
    raised: int,
    changes: int,
    chart: Path | None,
) -> None:
    def peak(fs: list[Frame]) -> float:
        return max(f.reported.bearing_temp for f in fs)

    def mean_load(fs: list[Frame]) -> float:
        return sum(f.load for f in fs) / len(fs)

    first = _first_alarm(alone)
    alone_text = "never" if first is None else f"at {first / 60:.1f} min"
    echo(f"left alone: bearing peak {peak(alone):.1f} °C, overheating alarm {alone_text}, "
         f"mean load {mean_load(alone):.3f}")  # fmt: skip
    lowest = min(f.state.load_limit for f in frames)
    echo(f"with the advisor: bearing peak {peak(frames):.1f} °C, overheating alarm raised "
         f"{raised} time(s), mean load {mean_load(frames):.3f}; {changes} load limit(s) "
         f"written, lowest {lowest:.2f}")  # fmt: skip
    if chart is not None:
        echo(f"chart: {chart}")
    else:
        echo("no chart: matplotlib is not installed (pip install matplotlib)")


def _chart(path: Path, frames: list[Frame], alone: list[Frame]) -> Path | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig: Any
    fig, (temp, load) = plt.subplots(2, 1, figsize=(11, 6.5), sharex=True)
    minutes = [f.t / 60 for f in frames]
    temp.plot(minutes, [f.reported.bearing_temp for f in alone], color="#b3261e", lw=1,
              label="left alone")  # fmt: skip
    temp.plot(minutes, [f.reported.bearing_temp for f in frames], color="#1f5fa8", lw=1,
              label="with the advisor")  # fmt: skip
    temp.axhline(ALARM_LIMIT_C, color="black", ls="--", lw=1, label="overheating alarm")
    temp.set_ylabel("bearing temperature (°C)")
    temp.set_title("The advisor derates the pump before the bearing reaches its alarm")
    temp.legend(loc="upper left")
    load.plot(minutes, [f.load for f in alone], color="#b3261e", lw=0.8, label="load, left alone")
    load.plot(minutes, [f.load for f in frames], color="#1f5fa8", lw=0.8,
              label="load, with the advisor")  # fmt: skip
    load.plot(minutes, [f.state.load_limit for f in frames], color="#1f5fa8", ls=":", lw=1.5,
              label="load limit written")  # fmt: skip
    load.set_ylim(0, 1.05)
    load.set_ylabel("load (share of rated flow)")
    load.set_xlabel("minutes")
    load.legend(loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
