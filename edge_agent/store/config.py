"""Store settings."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field

from edge_agent.configbase import Strict


class StoreConfig(Strict):
    path: Path = Path("edge-agent.db")
    """SQLite file; relative paths are under [agent] data_dir."""
    readings_max_age_s: Annotated[float, Field(gt=0)] = 7 * 86400.0
    max_bytes: Annotated[int, Field(ge=1 << 20)] = 256 << 20
    """Cap on the database files (main + WAL); the oldest readings go first."""
    summary_interval_s: Annotated[float, Field(gt=0)] = 60.0
    flush_interval_s: Annotated[float, Field(gt=0, le=60)] = 1.0
    """Buffered readings are written at least this often (one transaction per flush)."""
    flush_max_rows: Annotated[int, Field(ge=1)] = 5000
    outbox_max_rows: Annotated[int, Field(ge=100)] = 100_000
