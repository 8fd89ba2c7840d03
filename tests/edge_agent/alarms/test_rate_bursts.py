"""Rate rules on a real serial line: lines written to a real pty in bursts, read through
real pyserial by the serial source (which stamps each line on receipt), then the
shipped example's rate rule. Timeouts are safety nets, never assertions."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import threading
import time
from collections.abc import Sequence

from edge_agent.actions.recording import RecordingAction
from edge_agent.alarms.engine import AlarmEngine
from edge_agent.alarms.model import AlarmEvent, AlarmEventKind
from edge_agent.alarms.rules.rate import RateRule
from edge_agent.config import load_config
from edge_agent.reading import Reading
from edge_agent.simulator import SimulatorSettings, generate_series, serial_config_for
from edge_agent.sources.base import SourceState
from edge_agent.sources.serial import SerialSource
from tests.conftest import REPO

SAFETY_S = 20.0
RULE = "vibration-rising-fast"
LINES_PER_BURST = 5
BURST_EVERY_S = 0.5
"""Five lines of a 10 Hz device every half second: the mean rate is right, but each
burst arrives within microseconds (USB packets, a busy reader)."""


def read_in_bursts(lines: Sequence[bytes]) -> list[Reading]:
    """Write ``lines`` to a fresh pty in bursts; return what the serial source read."""
    master, slave = os.openpty()
    path = os.ttyname(slave)
    settings = SimulatorSettings(rate_hz=10.0)
    source = SerialSource(serial_config_for(settings, path, read_timeout_s=0.2))
    readings: list[Reading] = []
    opened, written = threading.Event(), threading.Event()

    def write() -> None:
        opened.wait(SAFETY_S)
        for i in range(0, len(lines), LINES_PER_BURST):
            os.write(master, b"".join(lines[i : i + LINES_PER_BURST]))
            time.sleep(BURST_EVERY_S)
        written.set()

    async def consume() -> None:
        async for reading in source.stream():
            readings.append(reading)

    async def run() -> None:
        task = asyncio.ensure_future(consume())
        # Lines written before the port is open would be lost: wait for it.
        while source.health.state is not SourceState.CONNECTED and not task.done():
            await asyncio.sleep(0.01)
        opened.set()
        while not written.is_set() and not task.done():
            await asyncio.sleep(0.05)
        await asyncio.sleep(BURST_EVERY_S)  # the last burst is read
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    try:
        asyncio.run(asyncio.wait_for(run(), SAFETY_S))
    finally:
        opened.set()
        writer.join(SAFETY_S)
        os.close(master)
        os.close(slave)
    assert len(readings) >= 4 * (len(lines) - 1)  # the first line may be cut at open
    return readings


def example_engine() -> tuple[AlarmEngine, list[AlarmEvent]]:
    config = load_config(REPO / "examples" / "agent.toml").config
    events: list[AlarmEvent] = []
    actions = {name: RecordingAction(name) for name in sorted(config.action_names())}
    return AlarmEngine(config.alarms, (1, 2, 4, 8, 16), events.append, actions), events


def raised(readings: Sequence[Reading]) -> list[AlarmEvent]:
    engine, events = example_engine()
    for r in readings:
        engine.on_sample(r.channel, r.ts, r.value)
    return [e for e in events if e.kind is AlarmEventKind.RAISED and e.alarm.rule == RULE]


def neighbour_rates(readings: Sequence[Reading]) -> list[float]:
    """|Δvalue/Δt| between neighbouring vibration readings: what the rule used to see."""
    vib = [r for r in readings if r.channel == "vibration"]
    pairs = itertools.pairwise(vib)
    return [abs((b.value - a.value) / (b.ts - a.ts)) for a, b in pairs if b.ts > a.ts]


def pump_lines() -> list[bytes]:
    """Five seconds of the healthy simulated pump at 10 Hz, as it prints them."""
    frames = generate_series(SimulatorSettings(rate_hz=10.0, seed=5), 5.0)
    return [f.line for f in frames if f.line is not None]


def test_lines_read_in_bursts_raise_no_rate_alarm() -> None:
    readings = read_in_bursts(pump_lines())
    # The bursts are real: between neighbours the vibration "rises" at thousands of mm/s
    # per second, far above the rule's 0.5.
    assert max(neighbour_rates(readings)) > 100.0
    assert raised(readings) == []


def test_a_real_fast_rise_read_in_bursts_raises_one_alarm() -> None:
    lines = []
    for i, line in enumerate(pump_lines()):
        b, v, c, a = line.decode().strip().split(",")
        rise = max(0.0, (i - 10) * 0.2)  # 2 mm/s per second from 1 s on
        lines.append(f"{b},{float(v) + rise:.3f},{c},{a}\n".encode())
    events = raised(read_in_bursts(lines))
    assert len(events) == 1
    assert events[0].alarm.channel == "vibration"
    assert events[0].alarm.value is not None and events[0].alarm.value > 0.5


def test_the_example_rate_rule_has_a_time_base() -> None:
    rules = load_config(REPO / "examples" / "agent.toml").config.alarms
    rule = next(r for r in rules if r.name == RULE)
    assert isinstance(rule, RateRule)
    assert rule.span_s >= 1.0
