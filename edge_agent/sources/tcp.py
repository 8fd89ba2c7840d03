"""TCP line source: the serial line protocol, read from a TCP connection.

Serial-to-Ethernet gateways (ser2net, Moxa NPort, Lantronix, USR IOT and the like) in
their raw "TCP server" mode pass a device's serial port through a TCP port: what the
device prints arrives on the connection, byte for byte. This source connects to it
through pyserial's ``socket://`` handler (``serial_for_url``), so it is a ``LineSource``
like ``serial``: same formats, mapping, counters and backoff between reconnects.

A gateway that reboots, or a cable pulled between us and it, can leave a connection
that never reports its end; ``idle_timeout_s`` without a byte counts it as lost, and the
source connects again.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import serial
from pydantic import Field

from edge_agent.sources.linesource import COUNTERS, LineSource, LineSourceConfig
from edgetwin_common.plugins import Plugin

__all__ = ["COUNTERS", "PLUGIN", "TcpSource", "TcpSourceConfig"]

_CONNECT_TIMEOUT_S = 5.0
"""pyserial's socket:// handler gives a connection attempt this long (POLL_TIMEOUT)."""


class TcpSourceConfig(LineSourceConfig):
    """A serial device behind a serial-to-Ethernet gateway (raw TCP), one record per line."""

    type: Literal["tcp"]
    host: Annotated[str, Field(min_length=1, max_length=253, pattern=r"^[^\s/?#@\[\]]+$")]
    """The gateway's host name or address (IPv4, IPv6 without brackets)."""
    port: Annotated[int, Field(ge=1, le=65535)]
    """The TCP port the gateway serves the serial line on (ser2net: the connection's
    port; Moxa NPort in TCP Server mode: 4001 for serial port 1)."""
    idle_timeout_s: Annotated[float, Field(gt=0, le=86400)] | None = 60.0
    """Seconds without a byte after which the connection counts as lost and is opened
    again (set it above the device's longest silence); none: never."""

    def url(self) -> str:
        """The pyserial URL of the connection: socket://host:port."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"socket://{host}:{self.port}"


class TcpSource(LineSource):
    """Readings from a line-printing device behind a TCP gateway (see
    ``TcpSourceConfig`` and, for the behaviour, ``LineSource``)."""

    config: TcpSourceConfig

    def _open_port(self) -> Any:
        return serial.serial_for_url(self.config.url(), timeout=self.config.read_timeout_s)

    def _where(self) -> str:
        return self.config.url()

    def _silence_limit_s(self) -> float | None:
        return self.config.idle_timeout_s

    def _join_timeout_s(self) -> float:
        # A connection attempt in flight cannot be cancelled: wait it out.
        return _CONNECT_TIMEOUT_S + super()._join_timeout_s()


PLUGIN = Plugin(TcpSourceConfig, TcpSource)
