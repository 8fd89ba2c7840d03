"""The pump's command input: a load setpoint the host writes back over the line.

The host (the agent's ``setpoint`` action, or anyone holding the port) writes one line
``load=0.6\\n`` to the device: from the next sample on, the pump's load limit ramps
towards 0.6 at ``PumpParams.load_ramp_per_s`` and the load is the process demand capped
at that limit (a variable-frequency drive's derating: the process still asks for what it
needs, the drive gives at most the limit). ``load=none`` (or ``load=1``) releases the
limit. Anything else on the back-channel is counted and ignored, as firmware does.

Determinism: the series depends only on the seed and on the sequence of (sample index,
setpoint) commands, which ``LoadCommand.history`` records.
"""

from __future__ import annotations

import math
import threading

from edge_agent.simulator.errors import SetpointInvalid

__all__ = ["COMMAND_FIELD", "LoadCommand", "format_command", "parse_command"]

COMMAND_FIELD = "load"
"""The field a command line sets (and the field of the actual load in printed lines)."""

_RELEASE = frozenset({"none", "off", "release", ""})


def parse_command(line: bytes | str) -> float | None:
    """The setpoint a command line asks for (share of rated flow, [0, 1]); None releases
    the limit.

    Raises SetpointInvalid for a line that is not ``load=<number in [0, 1]>`` or
    ``load=none``; the message quotes the line.
    """
    text = line.decode("ascii", "replace") if isinstance(line, bytes) else line
    key, eq, value = (part.strip() for part in text.strip().partition("="))
    if not eq or key != COMMAND_FIELD:
        raise SetpointInvalid(
            f"{text.strip()!r}: not a command (expected load=<0..1> or load=none)"
        )
    if value.lower() in _RELEASE:
        return None
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not math.isfinite(number) or not 0.0 <= number <= 1.0:
        raise SetpointInvalid(f"{text.strip()!r}: the load setpoint must be a number in [0, 1]")
    return number


def format_command(setpoint: float | None) -> bytes:
    """The line that asks for ``setpoint`` (None: release), ``\\n``-terminated.

    Raises SetpointInvalid for a setpoint outside [0, 1].
    """
    if setpoint is None:
        return f"{COMMAND_FIELD}=none\n".encode("ascii")
    if not math.isfinite(setpoint) or not 0.0 <= setpoint <= 1.0:
        raise SetpointInvalid(f"the load setpoint must be in [0, 1], got {setpoint}")
    return f"{COMMAND_FIELD}={setpoint:.4f}\n".encode("ascii")


class LoadCommand:
    """The setpoint the host last asked for, shared between the thread that reads the
    back-channel and the generator that steps the pump (which reads it once a sample).

    ``history``: every change as (sample index it took effect at, setpoint), so a run can
    be replayed bit for bit with ``iter_frames(settings, command=LoadCommand.replay(h))``.
    """

    def __init__(self, setpoint: float | None = None) -> None:
        self._lock = threading.Lock()
        self._pending: float | None = setpoint
        self._is_pending = setpoint is not None
        self.setpoint: float | None = None
        self.history: list[tuple[int, float | None]] = []
        self.rejected = 0
        self._schedule: list[tuple[int, float | None]] | None = None

    @classmethod
    def replay(cls, history: list[tuple[int, float | None]]) -> LoadCommand:
        """A command that applies ``history`` (as recorded) at the same sample indices."""
        command = cls()
        command._schedule = sorted(history, key=lambda item: item[0])
        return command

    def set(self, setpoint: float | None) -> None:
        """Ask for ``setpoint`` from the next sample on (None releases the limit).

        Raises SetpointInvalid outside [0, 1].
        """
        if setpoint is not None and (not math.isfinite(setpoint) or not 0.0 <= setpoint <= 1.0):
            raise SetpointInvalid(f"the load setpoint must be in [0, 1], got {setpoint}")
        with self._lock:
            self._pending = setpoint
            self._is_pending = True

    def feed(self, line: bytes) -> bool:
        """Apply one line read from the back-channel; False (and counted) if it is not a
        command."""
        try:
            setpoint = parse_command(line)
        except SetpointInvalid:
            self.rejected += 1
            return False
        self.set(setpoint)
        return True

    def take(self, index: int) -> float | None:
        """The setpoint in effect at sample ``index`` (called by the generator, in order)."""
        if self._schedule is not None:
            while self._schedule and self._schedule[0][0] <= index:
                self.setpoint = self._schedule.pop(0)[1]
                self.history.append((index, self.setpoint))
            return self.setpoint
        with self._lock:
            if self._is_pending:
                self._is_pending = False
                if self._pending != self.setpoint or not self.history:
                    self.setpoint = self._pending
                    self.history.append((index, self.setpoint))
        return self.setpoint
