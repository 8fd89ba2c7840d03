"""The Modbus source's config: the bus (RTU port or TCP gateway) and its register map."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Annotated, ClassVar, Literal, Protocol

from pydantic import Field, model_validator

from edge_agent.sources.base import RECONNECT_KEYS, SourceConfigBase
from edgetwin_common.config import Name, Strict
from edgetwin_common.retry import BackoffConfig

__all__ = [
    "BusSettings",
    "ByteOrder",
    "DataType",
    "ModbusRegister",
    "ModbusSourceConfig",
    "RegisterKind",
    "Transport",
]


class Transport(StrEnum):
    RTU = "rtu"
    """Modbus RTU over a serial port (an RS-485 adapter, a UART, a pty)."""
    TCP = "tcp"
    """Modbus TCP (MBAP framing), e.g. an Ethernet-to-RS-485 gateway."""


class RegisterKind(StrEnum):
    """The four Modbus tables."""

    HOLDING = "holding"
    """Holding registers, 16 bit, read with function 3."""
    INPUT = "input"
    """Input registers, 16 bit, read with function 4."""
    COIL = "coil"
    """Coils, 1 bit, read with function 1."""
    DISCRETE_INPUT = "discrete_input"
    """Discrete inputs, 1 bit, read with function 2."""

    @property
    def is_bit(self) -> bool:
        return self in (RegisterKind.COIL, RegisterKind.DISCRETE_INPUT)


class DataType(StrEnum):
    """How the raw 16-bit words of a register (or the bit of a coil) become a number."""

    BOOL = "bool"
    """A coil or discrete input: 0 or 1."""
    UINT16 = "uint16"
    INT16 = "int16"
    UINT32 = "uint32"
    """Two registers."""
    INT32 = "int32"
    """Two registers, two's complement."""
    FLOAT32 = "float32"
    """Two registers, IEEE 754 single precision."""

    @property
    def words(self) -> int:
        """Registers it spans (0 for a bit)."""
        if self is DataType.BOOL:
            return 0
        return 1 if self in (DataType.UINT16, DataType.INT16) else 2


class ByteOrder(StrEnum):
    BIG = "big"
    LITTLE = "little"


class BusSettings(Protocol):
    """How to reach a bus: what a Modbus source's config and a modbus_setpoint action's
    config (when it has a bus of its own) both say, and ``build_client`` reads."""

    @property
    def transport(self) -> Transport: ...
    @property
    def port(self) -> str | None: ...
    @property
    def baudrate(self) -> int: ...
    @property
    def parity(self) -> Literal["N", "E", "O"]: ...
    @property
    def stopbits(self) -> Literal[1, 2]: ...
    @property
    def bytesize(self) -> Literal[7, 8]: ...
    @property
    def host(self) -> str | None: ...
    @property
    def tcp_port(self) -> int: ...
    @property
    def timeout_s(self) -> float: ...


class ModbusRegister(Strict):
    """One value read from one device: value = decoded raw * scale + offset."""

    channel: Name
    """The channel its readings feed (unique within the source)."""
    slave: Annotated[int, Field(ge=0, le=255)] = 1
    """Device address (unit id) on the bus; 1-247 on RTU, a gateway's target on TCP."""
    kind: RegisterKind
    """holding, input, coil or discrete_input."""
    address: Annotated[int, Field(ge=0, le=65535)]
    """Zero-based protocol address (a manual's 30001/40001 numbering: subtract 30001/40001)."""
    data_type: DataType = DataType.UINT16
    """bool (coils, discrete inputs), uint16, int16, uint32, int32 or float32."""
    word_order: ByteOrder = ByteOrder.BIG
    """32-bit values: "big" = most significant register first (the Modbus convention),
    "little" = least significant register first (many meters: "word swapped")."""
    byte_order: ByteOrder = ByteOrder.BIG
    """Bytes within each register: "big" per the Modbus spec; "little" for devices that
    swap them."""
    scale: float = 1.0
    offset: float = 0.0
    period_s: Annotated[float, Field(gt=0, le=86400)] = 1.0
    """Poll period of this register (s)."""

    @model_validator(mode="after")
    def _type_fits_kind(self) -> ModbusRegister:
        if self.kind.is_bit and self.data_type is not DataType.BOOL:
            raise ValueError(f'a {self.kind.value} is one bit: data_type must be "bool"')
        if not self.kind.is_bit and self.data_type is DataType.BOOL:
            raise ValueError(
                f'data_type "bool" is for coils and discrete inputs, not {self.kind.value} '
                "registers (use uint16 and scale)"
            )
        if self.address + max(self.data_type.words, 1) - 1 > 65535:
            raise ValueError("address + register count goes past 65535")
        return self


class ModbusSourceConfig(SourceConfigBase):
    """Polls registers of Modbus devices on one bus (RTU) or through one gateway (TCP)."""

    type: Literal["modbus"]
    transport: Transport = Transport.RTU
    """rtu (serial port) or tcp (gateway)."""
    port: str | None = None
    """RTU: the serial device (prefer /dev/serial/by-id/...) or a pyserial URL."""
    baudrate: Annotated[int, Field(gt=0, le=4_000_000)] = 9600
    """RTU: bits per second."""
    parity: Literal["N", "E", "O"] = "N"
    """RTU: N (none), E (even: the Modbus default) or O (odd)."""
    stopbits: Literal[1, 2] = 1
    """RTU: 1, or 2 (the Modbus rule when parity is N; many devices accept 1)."""
    bytesize: Literal[7, 8] = 8
    host: str | None = None
    """TCP: the gateway's host name or address."""
    tcp_port: Annotated[int, Field(gt=0, le=65535)] = 502
    """TCP: the gateway's port."""
    timeout_s: Annotated[float, Field(gt=0, le=30)] = 0.5
    """Seconds to wait for an answer before counting a timeout."""
    offline_after_failures: Annotated[int, Field(ge=1, le=1000)] = 3
    """Consecutive failed requests after which a device counts as gone: it is then only
    retried with backoff, and with every device gone the port is reopened."""
    backoff: BackoffConfig = BackoffConfig(initial_s=0.5, max_s=30.0)
    """Waits before retrying a gone device, or reopening the port (no jitter)."""
    max_block_registers: Annotated[int, Field(ge=1, le=125)] = 125
    """Adjacent registers of one device, table and period are read in one request of
    at most this many registers (some devices take fewer; 1 reads each on its own)."""
    registers: Annotated[list[ModbusRegister], Field(min_length=1)]
    """The register map: one [[sources.registers]] table per value."""

    renamed_backoff_keys: ClassVar[Mapping[str, tuple[str, ...]]] = RECONNECT_KEYS

    @model_validator(mode="after")
    def _consistent(self) -> ModbusSourceConfig:
        problems: list[str] = []
        if self.transport is Transport.RTU and not self.port:
            problems.append('transport "rtu" needs port (the serial device)')
        if self.transport is Transport.TCP and not self.host:
            problems.append('transport "tcp" needs host (the gateway)')
        if self.transport is Transport.TCP and self.port:
            problems.append('port is the serial device of transport "rtu"; for tcp use tcp_port')
        seen: set[str] = set()
        for i, reg in enumerate(self.registers):
            if reg.channel in seen:
                problems.append(f"registers.{i}.channel: {reg.channel!r} is used twice")
            seen.add(reg.channel)
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def channel_names(self) -> list[str]:
        return [reg.channel for reg in self.registers]
