"""Part 3 of `edge-agent demo`: the advisor closes the loop.

The simulated pump loses its lubrication (the bearing's heat rises 2 °C a minute for a
quarter of an hour); left alone it would raise the 75 °C overheating alarm. The agent
reads it over a pty, its advisor (examples/twin.toml's settings) predicts the bearing
under every load limit it could set, and the setpoint action writes the highest safe one
back over the same pty (``load=0.55``): the pump is derated before the limit and the
alarm never fires. Fast-forwarded (``SPEED``), the simulator printing its own times.

It also says why: the agent runs the shipped twin (``[twin]``) and its cross-channel
surprise, whose ``cross_above`` rule (examples/twin.toml's) raises "bearing_temp N °C
above what load, ... predict": the bearing hot for its load, a fault and not the load.
The detector's learning is shortened to fit the demo (``CROSS``: the defaults learn for
~77 min, then the rule's warmup_s 30 min) and the fault comes after it (``FAULT``).

The agent runs on the device's clock (``DeviceClock``): the summaries' intervals close
on it, and the twin's state and the cross-channel periods are judged on it; on the wall
clock the fast-forwarded readings would be up to DURATION_S old, a stale state.

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
DURATION_S = 2880.0
FAULT_AT_S = 1500.0
FAULT = f"overheat@{FAULT_AT_S:g}s:15m,rate=2"
CROSS = {"warmup": 3, "likelihood_warmup": 5}
"""[twin.cross] for the demo: the first surprise after 17 + 3 + 5 periods (~25 min, the
twin's 16-period window first), not 17 + 10 + 50; the rule's min_unexplained (1 °C
beyond the twin over 10 min) keeps a young likelihood from alarming on noise."""
CROSS_RULE = "bearing-hot-for-load"


class DeviceClock:
    """The agent's clock in a fast-forward: the newest reading's timestamp, run on at
    ``speed`` simulated seconds per wall second since it was seen (so a silent source
    still goes stale); before any reading, ``start`` run on likewise."""

    def __init__(self, start: float, speed: float) -> None:
        self._speed = speed
        self._newest = start
        self._seen_at = time.monotonic()
        self._stamps: Callable[[], list[float | None]] = list

    def follow(self, agent: Agent) -> None:
        """Read the readings' timestamps from ``agent``'s channels from now on."""
        channels = agent.pipeline.channels.values()
        self._stamps = lambda: [c.cleaner.last_accepted_ts for c in channels]

    def __call__(self) -> float:
        newest = max((ts for ts in self._stamps() if ts is not None), default=None)
        wall = time.monotonic()
        if newest is not None and newest > self._newest:
            self._newest, self._seen_at = newest, wall
        return self._newest + (wall - self._seen_at) * self._speed


@dataclass
class AdvisorDemo:
    """What part 3 shows: the overheating alarm's raises (none, we hope), the run and
    the same pump left alone, the advisor's writes, the chart's path, and the
    cross-channel alarms raised (seconds from the start, message)."""

    alarms: int
    frames: list[Frame]
    alone: list[Frame]
    changes: int
    chart: Path | None
    cross: list[tuple[float, str]]
    periods: int
    """Twin periods the cross-channel detector scored."""


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
                {"name": CROSS_RULE, "channel": "bearing_temp", "type": "cross_above",
                 "set": 2.5, "clear": 1.0, "min_unexplained": 1.0, "warmup_s": 0.0},
            ],
            "channels": {"bearing_temp": {"unit": "°C"}},
            "twin": {"controls": ["load"], "cross": CROSS},
            # Every tick (0.5 s, ~50 simulated s): a twin period (60 s) is stored before
            # the next one ends, so the detector scores each one.
            "store": {"flush_interval_s": 0.5},
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
    epoch = time.time() - DURATION_S
    clock = DeviceClock(epoch, SPEED)
    config = LoadedConfig(workdir / "demo-advisor.toml", _config(workdir, settings))
    agent = Agent(config, clock=clock)
    clock.follow(agent)
    command = LoadCommand()

    async def run() -> None:
        stop = asyncio.Event()
        runner = asyncio.create_task(agent.run(stop))
        sim_stop = threading.Event()
        simulated = asyncio.to_thread(run_simulator, settings, sim_stop, None, epoch, command)
        try:
            await simulated
        finally:
            sim_stop.set()
            stop.set()
            await runner

    asyncio.run(run())
    events = [e for e in agent.engine.recent(500) if e.kind.value == "raised"]
    raised = sum(1 for e in events if e.alarm.rule == "bearing-hot")
    cross = [(e.ts - epoch, e.alarm.message) for e in events if e.alarm.rule == CROSS_RULE]
    frames = list(iter_frames(settings, command=LoadCommand.replay(command.history)))
    alone = generate_series(settings, DURATION_S)
    assert agent.advisor is not None
    changes = agent.advisor.advisor.counters["changes"]
    chart = _chart(workdir / "advisor.png", frames, alone, cross)
    _summary(echo, frames, alone, raised, changes, chart, cross)
    return AdvisorDemo(raised, frames, alone, changes, chart, cross, agent.cross.periods)


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
    cross: list[tuple[float, str]],
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
    for at, message in cross:
        when = f"{(at - FAULT_AT_S) / 60:.1f} min after the fault began"
        if first is not None:
            when += f", {(first - at) / 60:.1f} min before the overheating alarm left alone"
        echo(f"cross-channel alarm at {at / 60:.1f} min ({when}): {message}; the bearing is "
             "hot for its load: a fault, not the load")  # fmt: skip
    if not cross:
        echo("no cross-channel alarm")
    if chart is not None:
        echo(f"chart: {chart}")
    else:
        echo("no chart: matplotlib is not installed (pip install matplotlib)")


def _chart(
    path: Path, frames: list[Frame], alone: list[Frame], cross: list[tuple[float, str]]
) -> Path | None:
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
    temp.axvline(FAULT_AT_S / 60, color="grey", ls=":", lw=1, label="lubrication lost")
    for i, (at, _) in enumerate(cross):
        temp.axvline(at / 60, color="#e8a33d", lw=1.5,
                     label="cross-channel alarm: hot for its load" if i == 0 else None)  # fmt: skip
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
