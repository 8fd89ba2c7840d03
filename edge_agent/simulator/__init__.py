"""Device simulator: a centrifugal pump printing sensor lines on a pseudo-terminal.

``iter_frames``/``generate_series`` are the pure, seeded ground truth; ``run_simulator``
writes those frames to a pty on time. docs/simulator.md describes physics and faults.
"""

from edge_agent.simulator.command import LoadCommand, format_command, parse_command
from edge_agent.simulator.device import PtyDevice, SimulatorReport, run_simulator
from edge_agent.simulator.errors import (
    FaultSpecInvalid,
    PtyUnavailable,
    SetpointInvalid,
    SimulatorSettingsInvalid,
)
from edge_agent.simulator.faults import CHANNELS, Fault, FaultKind, fault_argument, parse_fault
from edge_agent.simulator.pump import (
    Frame,
    PumpParams,
    PumpState,
    SensorValues,
    SimulatorSettings,
    format_line,
    generate_series,
    iter_frames,
)
from edge_agent.simulator.rollforward import Trajectory, roll_forward
from edge_agent.simulator.source_config import serial_config_for

__all__ = [
    "CHANNELS",
    "Fault",
    "FaultKind",
    "FaultSpecInvalid",
    "Frame",
    "LoadCommand",
    "PtyDevice",
    "PtyUnavailable",
    "PumpParams",
    "PumpState",
    "SensorValues",
    "SetpointInvalid",
    "SimulatorReport",
    "SimulatorSettings",
    "SimulatorSettingsInvalid",
    "Trajectory",
    "fault_argument",
    "format_command",
    "format_line",
    "generate_series",
    "iter_frames",
    "parse_command",
    "parse_fault",
    "roll_forward",
    "run_simulator",
    "serial_config_for",
]
