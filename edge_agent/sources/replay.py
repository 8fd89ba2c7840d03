"""Replay source: a CSV of timestamp + value columns, in real time or accelerated."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field

from edge_agent.configbase import Strict
from edge_agent.sources.base import FieldMapping

SOURCE_TYPE = "replay"


class ReplaySourceConfig(Strict):
    """Reads ``path`` (header row; a timestamp column, ISO 8601 or UNIX seconds, and
    numeric columns). NAB's ``timestamp,value`` files work as they are."""

    type: Literal["replay"]
    name: Annotated[str, Field(min_length=1, max_length=64)]
    path: Path
    speed: Annotated[float, Field(ge=0)] = 1.0
    """1 = real time, 60 = sixty times faster, 0 = as fast as possible."""
    timestamp_column: str = "timestamp"
    columns: dict[str, FieldMapping] = Field(default_factory=dict)
    """Column -> channel; empty: every non-timestamp column feeds the channel of its name."""
    loop: bool = False
    """Start again from the top at the end (demos); timestamps keep increasing."""
