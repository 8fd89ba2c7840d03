"""The pymodbus client of a bus (an RTU port or a TCP gateway), shared by the Modbus
source's poll thread and the modbus_setpoint action's own bus thread."""

from __future__ import annotations

import logging
from typing import Any

from pymodbus import FramerType
from pymodbus.client import ModbusSerialClient, ModbusTcpClient
from pymodbus.framer import FramerRTU

from edge_agent.sources.modbus.config import BusSettings, Transport

__all__ = ["FrameWatch", "build_client", "where"]


class FrameWatch:
    """Sees the bytes of each exchange through pymodbus' ``trace_packet`` hook, to tell a
    silent device from an answer spoilt on the wire."""

    __slots__ = ("received",)

    def __init__(self) -> None:
        self.received = b""

    def trace(self, sending: bool, data: bytes) -> bytes:
        if sending:
            self.received = b""
        else:
            # pymodbus passes the whole receive buffer each time: keep the latest.
            self.received = data
        return data

    def is_crc_error(self) -> bool:
        data = self.received
        if len(data) < FramerRTU.MIN_SIZE:
            return False
        crc = (data[-2] << 8) | data[-1]
        return not FramerRTU.check_CRC(data[:-2], crc)


def build_client(config: BusSettings, watch: FrameWatch | None = None) -> Any:
    """pymodbus' synchronous client for the config (nothing opened yet). Retries are
    left to the poll loop (retries=0): each attempt is counted and the next poll is the
    retry."""
    # pymodbus logs every timeout at ERROR; the source counts them and logs changes once.
    pymodbus_log = logging.getLogger("pymodbus.logging")
    if pymodbus_log.level == logging.NOTSET:
        pymodbus_log.setLevel(logging.CRITICAL)
    if config.transport is Transport.TCP:
        assert config.host is not None  # the config validator guarantees it
        return ModbusTcpClient(
            config.host,
            port=config.tcp_port,
            timeout=config.timeout_s,
            retries=0,
            trace_packet=None if watch is None else watch.trace,
        )
    assert config.port is not None
    return ModbusSerialClient(
        config.port,
        framer=FramerType.RTU,
        baudrate=config.baudrate,
        bytesize=config.bytesize,
        parity=config.parity,
        stopbits=config.stopbits,
        timeout=config.timeout_s,
        retries=0,
        trace_packet=None if watch is None else watch.trace,
    )


def where(config: BusSettings) -> str:
    """The bus as people name it: the serial port, or host:port."""
    if config.transport is Transport.TCP:
        return f"{config.host}:{config.tcp_port}"
    return str(config.port)
