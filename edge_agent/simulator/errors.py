"""Errors of the device simulator, named for what the caller should do."""

from __future__ import annotations

from edge_agent.errors import EdgeAgentError

__all__ = [
    "FaultSpecInvalid",
    "PtyUnavailable",
    "SetpointInvalid",
    "SimulatedBusFailed",
    "SimulatorSettingsInvalid",
    "SocatMissing",
]


class SimulatorSettingsInvalid(EdgeAgentError, ValueError):
    """A simulator setting is out of range (rate, duration, link path): fix the
    command line (exit code 2)."""


class FaultSpecInvalid(SimulatorSettingsInvalid):
    """A ``--fault`` spec does not parse; the message quotes it and shows the grammar."""


class PtyUnavailable(EdgeAgentError):
    """This OS has no pseudo-terminals (os.openpty): run the simulator on Linux or macOS."""


class SocatMissing(EdgeAgentError):
    """The simulated Modbus RTU bus links two pseudo-terminals with socat, which is not
    installed: install it (Debian package socat)."""


class SimulatedBusFailed(EdgeAgentError):
    """A simulated Modbus bus or gateway did not start or stop in time (socat made no
    ptys, the pymodbus server did not come up or down); the message says which."""


class SetpointInvalid(SimulatorSettingsInvalid):
    """A load setpoint (a ``load=...`` command line or a value) is not a number in
    [0, 1]: the message quotes it."""
