"""Serial line-protocol source: microcontrollers printing CSV, key=value or JSON lines."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import Field, model_validator

from edge_agent.configbase import Strict
from edge_agent.sources.base import FieldMapping

SOURCE_TYPE = "serial"


class LineFormat(StrEnum):
    CSV = "csv"
    """Values separated by ``csv_delimiter``, in the order of ``csv_fields``."""
    KEY_VALUE = "kv"
    """``key=value`` pairs separated by spaces, commas or semicolons."""
    JSON = "jsonl"
    """One JSON object per line: {"field": number, ...}."""


class SerialSourceConfig(Strict):
    """A serial port (USB CDC, UART, RS-485 adapter) printing one record per line."""

    type: Literal["serial"]
    name: Annotated[str, Field(min_length=1, max_length=64)]
    port: Annotated[str, Field(min_length=1)]
    """Device path (prefer /dev/serial/by-id/..., stable across replugs) or a pyserial URL."""
    baudrate: Annotated[int, Field(gt=0, le=4_000_000)] = 115200
    format: LineFormat = LineFormat.CSV
    csv_fields: list[str] = Field(default_factory=list)
    """Field name of each CSV column, in order (required for format = "csv")."""
    csv_delimiter: Annotated[str, Field(min_length=1, max_length=1)] = ","
    fields: Annotated[dict[str, FieldMapping], Field(min_length=1)]
    """Field name in the line -> channel; fields not listed are ignored (and counted)."""
    timestamp_field: str | None = None
    """Field holding the device's own UNIX timestamp (s); None: stamp on receipt."""
    read_timeout_s: Annotated[float, Field(gt=0, le=60)] = 1.0
    max_line_bytes: Annotated[int, Field(ge=16, le=65536)] = 512
    reconnect_min_s: Annotated[float, Field(gt=0)] = 0.5
    reconnect_max_s: Annotated[float, Field(gt=0)] = 30.0
    encoding: str = "utf-8"

    @model_validator(mode="after")
    def _csv_needs_fields(self) -> SerialSourceConfig:
        if self.format is LineFormat.CSV and not self.csv_fields:
            raise ValueError('format "csv" needs csv_fields (the name of each column)')
        if self.reconnect_max_s < self.reconnect_min_s:
            raise ValueError("reconnect_max_s must be >= reconnect_min_s")
        return self
