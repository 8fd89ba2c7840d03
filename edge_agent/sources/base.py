"""The source contract every input plugin implements, and the base of their configs."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Annotated, Any, ClassVar, Protocol

from pydantic import Field, ValidationInfo, model_validator

from edge_agent.reading import Reading
from edgetwin_common.config import Name, Strict
from edgetwin_common.retry import complete_backoff_table

RECONNECT_KEYS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {"reconnect_min_s": ("initial_s",), "reconnect_max_s": ("max_s",)}
)
"""The keys sources had before their ``backoff`` table (old key -> its new keys)."""


class SourceState(StrEnum):
    STARTING = "starting"
    CONNECTED = "connected"
    DISCONNECTED = "disconnected"
    FINISHED = "finished"
    """A finite source (replay) reached its end."""


@dataclass(slots=True)
class SourceHealth:
    """What a source reports about itself; read by /status, metrics and health alarms.

    counters: named counts; each plugin creates all of its counters (at 0) when it is
        built and only increments them afterwards, so another thread may iterate them.
        Serial: lines_* and the other line outcomes, values_not_finite, fields_unmapped,
        reconnects, open_failures, read_timeouts, readings_dropped_queue_full. Replay:
        rows_*, timestamps_backwards, values_not_finite, loops. See docs/sources.md.
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

    channel: Name
    scale: float = 1.0
    offset: float = 0.0


class SourceConfigBase(Strict):
    """What every source plugin's config has. Each plugin narrows ``type`` to its key
    (``type: Literal["serial"]``), which discriminates the ``[[sources]]`` union."""

    type: str
    name: Annotated[str, Field(min_length=1, max_length=64)]
    """The source's name in /status, logs and metrics (unique among sources)."""

    renamed_backoff_keys: ClassVar[Mapping[str, tuple[str, ...]]] = MappingProxyType({})
    """A plugin with a ``backoff`` table: the flat keys it had before (``RECONNECT_KEYS``),
    still accepted with a deprecation note."""

    @model_validator(mode="before")
    @classmethod
    def _backoff_table(cls, data: Any, info: ValidationInfo) -> Any:
        if "backoff" not in cls.model_fields:
            return data
        return complete_backoff_table(cls, data, info, cls.renamed_backoff_keys, "sources")

    def channel_names(self) -> list[str]:
        """The channels this config maps readings onto, in config order (a replay
        without ``columns``: none, its file's header decides)."""
        raise NotImplementedError
