"""The advisor in closed loop with the simulated pump, in one process: what the bench,
the tests and the demo's chart run (the same advisor, guards and predictor as on a
device: the physics observer, or the twin reading a real store, ``StoredTwin``; the pty
and the ``setpoint`` action are replaced by the ``LoadCommand`` they would set, so a run
is deterministic and fast).

An overheating event is the reported bearing temperature at or above the alarm limit
for ``alarm_delay_s`` in a row (a value_above rule with that delay).
"""

from __future__ import annotations

import contextlib
import math
import random
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from edge_agent.simulator.command import LoadCommand
from edge_agent.simulator.faults import Fault, FaultKind
from edge_agent.simulator.observer import PumpObserver
from edge_agent.simulator.pump import SimulatorSettings, iter_frames
from edge_agent.store import Store, StoreConfig
from edge_agent.twin.advisor.advisor import Advisor
from edge_agent.twin.advisor.config import AdvisorConfig, ChannelLimit
from edge_agent.twin.advisor.errors import PredictionFailed
from edge_agent.twin.advisor.twin_predictor import TwinPredictor
from edge_agent.twin.config import TwinConfig
from edge_agent.twin.service import TwinService

__all__ = [
    "CommandOutput",
    "LoopResult",
    "StoredTwin",
    "heat_fault_runs",
    "pump_advisor_config",
    "run_fixed",
    "run_threshold",
    "run_with_advisor",
]

ALARM_LIMIT_C = 75.0
"""The bearing's overheating alarm in these runs (value_above, °C)."""


class CommandOutput:
    """Writes a value into a ``LoadCommand``: what the ``setpoint`` action does over
    the pty, in process."""

    def __init__(self, command: LoadCommand, name: str = "pump-load") -> None:
        self.name = name
        self.command = command
        self.written: list[float] = []

    def write(self, value: float) -> None:
        self.command.set(min(1.0, max(0.0, value)))
        self.written.append(value)


@dataclass
class LoopResult:
    """One run: whether the alarm fired (and when), the mean load (throughput share of
    rated flow), and, when traced, the series behind the chart."""

    overheated: bool
    first_alarm_s: float | None
    throughput: float
    peak_c: float
    changes: int = 0
    failures: int = 0
    """Advisor steps that fell back (no state yet, a stale channel, the model failing)."""
    trace: dict[str, list[float]] = field(default_factory=dict)


def pump_advisor_config(**overrides: object) -> AdvisorConfig:
    """The advisor config the runs use (examples/twin.toml holds the same values)."""
    values: dict[str, object] = {
        "enabled": True,
        "output": "pump-load",
        "limits": {"bearing_temp": ChannelLimit(above=ALARM_LIMIT_C, margin=2.0)},
        "horizon_s": 600.0,
        "step_s": 10.0,
        "max_rate_per_min": 0.1,
        "hold_off_s": 30.0,
        "safe_value": 0.3,
    }
    values.update(overrides)
    return AdvisorConfig.model_validate(values)


def heat_fault_runs(
    count: int, duration_s: float = 5400.0, base_seed: int = 0
) -> list[SimulatorSettings]:
    """``count`` seeded runs at 1 Hz, each with one heat fault drawn from its seed (in
    turn: lost lubrication, bearing wear, a calibration drift of the bearing sensor),
    sized so that the pump left alone overheats and the pump at minimum load does not."""
    runs = []
    for i in range(count):
        seed = base_seed + i
        rng = random.Random(f"advisor-bench:{seed}")
        start = rng.uniform(600.0, 1500.0)
        kind = (FaultKind.OVERHEAT, FaultKind.WEAR, FaultKind.DRIFT)[i % 3]
        if kind is FaultKind.OVERHEAT:
            rate = rng.uniform(0.6, 1.5)
            peak = rng.uniform(24.0, 32.0)
            fault = Fault(kind, start, peak / rate * 60.0, rate=rate)
        elif kind is FaultKind.WEAR:
            # Wear never stops: its rate is set by the friction heat it reaches at the
            # run's end (2 °C per mm/s, PumpParams.bearing_per_wear_c).
            peak = rng.uniform(22.0, 30.0) / 2.0
            fault = Fault(kind, start, None, rate=peak / ((duration_s - start) / 60.0))
        else:
            rate = rng.uniform(0.4, 0.8)
            fault = Fault(kind, start, rng.uniform(15.0, 25.0) / rate * 60.0, "bearing_temp", rate)
        runs.append(
            SimulatorSettings(rate_hz=1.0, seed=seed, faults=(fault,), duration_s=duration_s)
        )
    return runs


def _alarm(delay_s: float, rate_hz: float) -> Callable[[float, float], bool]:
    need = max(1, math.ceil(delay_s * rate_hz))
    above = 0

    def check(t: float, value: float) -> bool:
        nonlocal above
        above = above + 1 if value >= ALARM_LIMIT_C else 0
        return above >= need

    return check


def _run(
    settings: SimulatorSettings,
    command: LoadCommand,
    on_frame: Callable[[float, dict[str, float]], None] | None,
    trace: bool,
    alarm_delay_s: float,
) -> LoopResult:
    alarm = _alarm(alarm_delay_s, settings.rate_hz)
    first: float | None = None
    total = peak = 0.0
    count = 0
    series: dict[str, list[float]] = {"t": [], "bearing_temp": [], "load": [], "limit": []}
    for frame in iter_frames(settings, command=command):
        reading = frame.reported.as_dict()
        reading["load"] = frame.load
        if on_frame is not None:
            on_frame(frame.t, reading)
        total += frame.load
        count += 1
        peak = max(peak, reading["bearing_temp"])
        if alarm(frame.t, reading["bearing_temp"]) and first is None:
            first = frame.t
        if trace and frame.index % 10 == 0:
            series["t"].append(frame.t)
            series["bearing_temp"].append(reading["bearing_temp"])
            series["load"].append(frame.load)
            series["limit"].append(frame.state.load_limit)
    return LoopResult(
        first is not None, first, total / max(1, count), peak, trace=series if trace else {}
    )


def run_fixed(
    settings: SimulatorSettings, limit: float | None, alarm_delay_s: float = 5.0
) -> LoopResult:
    """The run with a fixed load limit from the start (None: the pump left alone)."""
    return _run(settings, LoadCommand(limit), None, False, alarm_delay_s)


def run_threshold(
    settings: SimulatorSettings,
    above_c: float,
    limit: float,
    hysteresis_c: float = 3.0,
    alarm_delay_s: float = 5.0,
) -> LoopResult:
    """The run with a reactive rule: limit the load to ``limit`` while the reported
    bearing temperature is at or above ``above_c`` (released below it minus
    ``hysteresis_c``)."""
    command = LoadCommand()

    def on_frame(t: float, reading: dict[str, float]) -> None:
        bearing = reading["bearing_temp"]
        if bearing >= above_c and command.setpoint is None:
            command.set(limit)
        elif bearing < above_c - hysteresis_c and command.setpoint is not None:
            command.set(None)

    return _run(settings, command, on_frame, False, alarm_delay_s)


def run_with_advisor(
    settings: SimulatorSettings,
    config: AdvisorConfig | None = None,
    trace: bool = False,
    alarm_delay_s: float = 5.0,
) -> LoopResult:
    """The run with the advisor deciding every ``step_s`` from the readings so far."""
    config = config or pump_advisor_config()
    command = LoadCommand()
    output = CommandOutput(command, config.output or "pump-load")
    with contextlib.ExitStack() as stack:
        observer: PumpObserver | StoredTwin
        if config.predictor == "twin":
            observer = stack.enter_context(StoredTwin(config.control, config.twin_residual_periods))
        else:
            observer = PumpObserver(settings.params, config.step_s, failure=PredictionFailed)
        advisor = Advisor(config, observer, output if config.enabled else None)
        next_step = config.step_s

        def on_frame(t: float, reading: dict[str, float]) -> None:
            nonlocal next_step
            for channel, value in reading.items():
                observer.observe(channel, t, value)
                advisor.observe(channel, t)
            if t >= next_step:
                next_step += config.step_s
                advisor.step(t)

        result = _run(settings, command, on_frame, trace, alarm_delay_s)
    result.changes = advisor.counters["changes"]
    result.failures = advisor.counters["failures"]
    return result


class StoredTwin:
    """The twin predictor as on a device: every reading into a real store (SQLite in a
    temporary folder, flushed every ``flush_interval_s`` of data time, as the agent
    does), the twin's state from its summaries, the shipped default twin."""

    def __init__(self, control: str, residual_periods: int) -> None:
        self._folder = tempfile.TemporaryDirectory(prefix="advisor-twin-")
        self._store_config = StoreConfig()
        self._now = 0.0
        path = Path(self._folder.name) / "store.db"
        self.store = Store(path, self._store_config, clock=lambda: self._now)
        twin = TwinService(TwinConfig(), lambda p: p, [], self.store, lambda: self._now)
        self.predictor = TwinPredictor(twin, control, residual_periods)
        self._next_flush = self._store_config.flush_interval_s

    def __enter__(self) -> StoredTwin:
        return self

    def __exit__(self, *exc: object) -> None:
        self.store.close()
        self._folder.cleanup()

    def observe(self, channel: str, ts: float, value: float) -> None:
        if ts >= self._next_flush:
            self.store.flush()
            self._next_flush += self._store_config.flush_interval_s
        self._now = ts
        self.store.add_sample(ts, channel, value, None, None)
        self.predictor.observe(channel, ts, value)

    def predict(self, controls: npt.NDArray[np.float64], step_s: float) -> Mapping[str, Any]:
        return self.predictor.predict(controls, step_s)
