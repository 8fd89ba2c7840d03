"""Device simulator: a centrifugal pump printing sensor lines on a pseudo-terminal.

``iter_frames``/``generate_series`` are the pure, seeded ground truth; ``run_simulator``
writes those frames to a pty on time. docs/simulator.md describes physics and faults.
"""

from edge_agent.simulator.device import PtyDevice, SimulatorReport, run_simulator
from edge_agent.simulator.errors import FaultSpecInvalid, PtyUnavailable, SimulatorSettingsInvalid
from edge_agent.simulator.faults import CHANNELS, Fault, FaultKind, fault_argument, parse_fault
from edge_agent.simulator.pump import (
    Frame,
    PumpParams,
    SensorValues,
    SimulatorSettings,
    format_line,
    generate_series,
    iter_frames,
)
from edge_agent.simulator.source_config import serial_config_for

__all__ = [
    "CHANNELS",
    "Fault",
    "FaultKind",
    "FaultSpecInvalid",
    "Frame",
    "PtyDevice",
    "PtyUnavailable",
    "PumpParams",
    "SensorValues",
    "SimulatorReport",
    "SimulatorSettings",
    "SimulatorSettingsInvalid",
    "fault_argument",
    "format_line",
    "generate_series",
    "iter_frames",
    "parse_fault",
    "run_simulator",
    "serial_config_for",
]
