"""The shipped example config's alarms on the shipped simulator: a fault-free pump raises
nothing, an injected fault raises one alarm. Fast-forwarded: the simulator's series
(``generate_series``, the very lines it prints) replayed through the live pipeline's
classes (``run_backtest``: the real model, the real store, the real alarm engine)."""

from __future__ import annotations

import csv
from pathlib import Path

from edge_agent.alarms.model import AlarmEvent
from edge_agent.config import LoadedConfig, parse_config
from edge_agent.pipeline.backtest import run_backtest
from edge_agent.simulator import CHANNELS, SimulatorSettings, generate_series, parse_fault
from tests.conftest import REPO
from tests.edge_agent.integration.helpers import T0

EXAMPLE = REPO / "examples" / "agent.toml"
RATE_HZ = 10.0


def example_config(tmp_path: Path) -> LoadedConfig:
    text = EXAMPLE.read_text(encoding="utf-8")
    text = text.replace('data_dir = "/var/lib/edge-agent"', f'data_dir = "{tmp_path}"')
    path = tmp_path / "agent.toml"
    path.write_text(text, encoding="utf-8")
    return LoadedConfig(path, parse_config(text, str(path)))


def raised_on_simulated_pump(tmp_path: Path, minutes: float, *faults: str) -> list[AlarmEvent]:
    """The alarms the example raises over ``minutes`` of the simulated pump at 10 Hz."""
    settings = SimulatorSettings(
        rate_hz=RATE_HZ, seed=3, faults=tuple(parse_fault(f) for f in faults)
    )
    data = tmp_path / "pump.csv"
    with data.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["timestamp", *CHANNELS])
        for frame in generate_series(settings, minutes * 60.0):
            if frame.line is not None:  # None: nothing printed (dropout, vanished)
                cells = frame.line.decode().strip().split(",")
                writer.writerow([f"{T0 + frame.t:.1f}", *cells])
    return run_backtest(example_config(tmp_path), data, None).raised


def test_a_fault_free_pump_raises_no_alarm(tmp_path: Path) -> None:
    # 50 minutes: past the anomaly rule's warm-up (30), through a whole load cycle.
    assert [e.alarm.message for e in raised_on_simulated_pump(tmp_path, 50.0)] == []


def test_an_injected_fault_raises_one_alarm(tmp_path: Path) -> None:
    raised = raised_on_simulated_pump(tmp_path, 40.0, "spike@2100s,channel=vibration")
    assert [(e.alarm.rule, e.alarm.channel, e.ts - T0) for e in raised] == [
        ("anomaly", "vibration", 2100.0)
    ]
