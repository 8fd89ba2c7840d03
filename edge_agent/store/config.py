"""Store settings (docs/store.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field, model_validator

from edgetwin_common.config import Strict


class StoreConfig(Strict):
    path: Path = Path("edge-agent.db")
    """SQLite file; relative paths are under [agent] data_dir."""
    readings_max_age_s: Annotated[float, Field(gt=0)] = 7 * 86400.0
    """Readings older than this (seconds, counted back from the newest stored reading)
    are deleted by ``Store.enforce_limits``."""
    summaries_max_age_s: Annotated[float, Field(gt=0)] = 30 * 86400.0
    """Per-interval summaries older than this are deleted. About 130 bytes per channel and
    interval: 30 days of 60 s summaries is ~5.6 MB per channel."""
    alarms_max_age_s: Annotated[float, Field(gt=0)] = 365 * 86400.0
    """Cleared alarms (and their history) cleared longer ago than this are deleted;
    active alarms are never deleted."""
    max_bytes: Annotated[int, Field(ge=1 << 20)] = 256 << 20
    """Cap on the database files (main + WAL), bytes; the oldest readings go first."""
    summary_interval_s: Annotated[float, Field(gt=0)] = 60.0
    """Length of a summary interval, seconds; intervals are aligned to multiples of it."""
    flush_interval_s: Annotated[float, Field(gt=0, le=60)] = 10.0
    """Buffered readings are written this often (one transaction per flush; alarm events
    are written at once). Each commit costs whole pages on the card, so this sets the
    write rate (docs/store.md#write-rate); a crash or power cut loses at most this much
    of the readings not yet written."""
    flush_max_rows: Annotated[int, Field(ge=1)] = 5000
    """Flush early once this many readings are buffered (``Store.is_flush_due``)."""
    buffer_max_rows: Annotated[int, Field(ge=1)] = 200_000
    """Hard cap on buffered readings while flushes fail (disk full, I/O error): past it
    the oldest buffered readings are dropped and counted (``StoreStats.samples_dropped``)."""
    outbox_max_rows: Annotated[int, Field(ge=100)] = 100_000
    """Cap on outbox rows awaiting cloud acknowledgement: past it the oldest summary rows
    are dropped and counted; alarm rows are never dropped for lack of room."""

    @model_validator(mode="after")
    def _buffer_holds_a_flush(self) -> StoreConfig:
        if self.buffer_max_rows < self.flush_max_rows:
            raise ValueError(f"buffer_max_rows: must be >= flush_max_rows ({self.flush_max_rows})")
        return self
