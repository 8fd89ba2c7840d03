"""The source contract every input plugin implements."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Annotated, Protocol

from pydantic import Field

from edge_agent.configbase import Strict
from edge_agent.reading import Reading


class SourceState(StrEnum):
    STARTING = "starting"
    CONNECTED = "connected"
    DISCONNECTED = "disconnected"
    FINISHED = "finished"
    """A finite source (replay) reached its end."""


@dataclass(slots=True)
class SourceHealth:
    """What a source reports about itself; read by /status, metrics and health alarms.

    counters: free-form named counts, e.g. lines_ok, lines_garbage, lines_too_long,
        lines_partial, values_bad, fields_unmapped, reconnects, read_timeouts.
    """

    state: SourceState = SourceState.STARTING
    since: float = 0.0
    """UNIX time of the last state change."""
    last_reading_ts: float | None = None
    last_error: str | None = None
    counters: Counter[str] = field(default_factory=Counter)

    def set_state(self, state: SourceState, now: float, error: str | None = None) -> bool:
        """Change state; returns True when it actually changed (log it once, then)."""
        if error is not None:
            self.last_error = error
        if state is self.state:
            return False
        self.state = state
        self.since = now
        return True


class Source(Protocol):
    """An input plugin. ``stream`` runs until cancelled (or, for a finite source, until
    its data ends); it never raises for bad input or a lost device: it counts, reports
    through ``health`` and reconnects by itself."""

    name: str
    health: SourceHealth

    def stream(self) -> AsyncIterator[Reading]: ...

    def channels(self) -> list[str]:
        """The channel names this source can produce (from its config)."""
        ...


class FieldMapping(Strict):
    """Maps one field of a source's data onto a channel: value = raw * scale + offset."""

    channel: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]
    scale: float = 1.0
    offset: float = 0.0
