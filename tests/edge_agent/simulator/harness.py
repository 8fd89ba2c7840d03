"""Run the simulator on a real pty in a thread, for tests of the simulator and sources."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from edge_agent.simulator import SimulatorReport, SimulatorSettings, run_simulator
from tests.conftest import require

if not hasattr(os, "openpty"):
    require(False, "no pseudo-terminals on this OS", module=True)


@dataclass
class RunningSimulator:
    settings: SimulatorSettings
    stop: threading.Event
    paths: list[str] = field(default_factory=list)
    """Slave path of every appearance of the device, in order."""
    appeared: threading.Event = field(default_factory=threading.Event)
    report: SimulatorReport | None = None
    error: BaseException | None = None

    def on_ready(self, path: str) -> None:
        self.paths.append(path)
        self.appeared.set()


@contextmanager
def running_simulator(settings: SimulatorSettings, wait: bool = True) -> Iterator[RunningSimulator]:
    """The simulator writing in a thread; stopped (and checked for errors) on exit."""
    sim = RunningSimulator(settings, threading.Event())

    def run() -> None:
        try:
            sim.report = run_simulator(settings, sim.stop, sim.on_ready)
        except BaseException as exc:  # surfaced in the test thread below
            sim.error = exc

    thread = threading.Thread(target=run, name="simulator", daemon=True)
    thread.start()
    try:
        if wait:
            assert sim.appeared.wait(5.0), "the simulator did not open its pty"
        yield sim
    finally:
        sim.stop.set()
        thread.join(5.0)
        assert not thread.is_alive(), "the simulator did not stop"
        if sim.error is not None:
            raise sim.error
