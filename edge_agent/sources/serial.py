"""Serial line-protocol source: microcontrollers printing CSV, key=value or JSON lines.

A ``LineSource`` (``linesource``): one reader thread per source does the blocking
pyserial reads (pyserial has no asyncio API), cuts each chunk into lines, parses and
maps them there, and hands the readings to the event loop at once, so a line reaches
the consumer within the time it takes to wake the loop (tens of microseconds).

The port is opened with ``serial.serial_for_url`` (pyserial URLs such as ``loop://`` and
pty paths work), exclusively, and reopened by its configured path after a loss (with the
``backoff`` waits), so a /dev/serial/by-id link follows the device when a replug gives
it another ttyUSB number.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Literal

import serial
from pydantic import Field

from edge_agent.sources.base import RECONNECT_KEYS
from edge_agent.sources.lineproto import LineFormat
from edge_agent.sources.linesource import COUNTERS, LineSource, LineSourceConfig
from edgetwin_common.plugins import Plugin

__all__ = ["COUNTERS", "PLUGIN", "LineFormat", "SerialSource", "SerialSourceConfig"]


class SerialSourceConfig(LineSourceConfig):
    """A serial port (USB CDC, UART, RS-485 adapter) printing one record per line."""

    type: Literal["serial"]
    port: Annotated[str, Field(min_length=1)]
    """Device path (prefer /dev/serial/by-id/..., stable across replugs) or a pyserial URL."""
    baudrate: Annotated[int, Field(gt=0, le=4_000_000)] = 115200
    """Bits per second (ignored by USB CDC devices and ptys)."""

    renamed_backoff_keys: ClassVar[Mapping[str, tuple[str, ...]]] = RECONNECT_KEYS


class SerialSource(LineSource):
    """Readings from a serial device printing lines (see ``SerialSourceConfig`` and, for
    the behaviour, ``LineSource``)."""

    config: SerialSourceConfig

    def _open_port(self) -> Any:
        config = self.config
        return serial.serial_for_url(
            config.port,
            baudrate=config.baudrate,
            timeout=config.read_timeout_s,
            exclusive=True,  # two readers would each get half the bytes
        )

    def _where(self) -> str:
        return self.config.port

    def _resolved(self) -> str:
        port = self.config.port
        if "://" in port:
            return port
        real = os.path.realpath(port)
        return port if real == port else f"{port} (-> {real})"


PLUGIN = Plugin(SerialSourceConfig, SerialSource)
