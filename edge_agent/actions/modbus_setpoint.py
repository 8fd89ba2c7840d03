"""The "modbus_setpoint" action: writes a control value to a Modbus holding register (a
drive's speed or load reference), the advisor's output over Modbus RTU or TCP.

One shape with the serial ``setpoint`` action: ``write(value)`` (what the advisor
calls) refuses a value outside [minimum, maximum] (never clipped), and while an alarm
that names the action is active it holds ``safe_value`` and refuses the advisor's
writes (an interlock independent of the advisor's guards).

The register: register = (value - offset) / scale, rounded for the integer types and
encoded as ``data_type`` with the word and byte orders of the Modbus source's registers
(the same description reads it back: value = register * scale + offset).

The bus has one owner (edge_agent/sources/modbus/write.py): with ``source`` naming a
Modbus source, its poll thread writes between two polls (an RS-485 line with sensor
reads and the setpoint on it); without, the action's own thread holds its client. Either
way ``write`` only posts the value and returns: the exchange, its timeout, the read-back
(``verify``) and the retries run in that thread, and the outcome comes back to the event
loop, into ``health`` and ``counters`` (an exception answer names the device, the
register and the Modbus exception).
"""

from __future__ import annotations

import asyncio
import logging
import math
import struct
from collections.abc import Iterable, Mapping
from typing import Annotated, Literal

from pydantic import Field, model_validator

from edge_agent.actions.base import ActionConfigBase
from edge_agent.actions.control import ControlGate
from edge_agent.actions.errors import ControlWriteFailed
from edge_agent.actions.health import DeliveryHealth
from edge_agent.alarms.model import AlarmEvent
from edge_agent.sources.base import SourceState
from edge_agent.sources.modbus.config import ByteOrder, DataType, Transport
from edge_agent.sources.modbus.decode import encode_value
from edge_agent.sources.modbus.source import ModbusSource
from edge_agent.sources.modbus.write import OwnBus, RegisterWrite, WriteMailbox, WriteOutcome
from edgetwin_common.config import Name
from edgetwin_common.plugins import Plugin
from edgetwin_common.retry import BackoffConfig

__all__ = ["PLUGIN", "ModbusSetpointAction", "ModbusSetpointConfig", "link_buses"]

log = logging.getLogger(__name__)


class ModbusSetpointConfig(ActionConfigBase):
    """A control value written to a holding register (the advisor's output)."""

    type: Literal["modbus_setpoint"]
    source: Name | None = None
    """The Modbus source whose bus this writes on (its poll thread sends the writes
    between its reads: one master on the line). Required when a Modbus source reads the
    same RTU port; leave out the bus keys below then."""
    transport: Transport = Transport.RTU
    """Without ``source``: rtu (serial port) or tcp (gateway, device)."""
    port: str | None = None
    """Without ``source``, RTU: the serial device or a pyserial URL."""
    baudrate: Annotated[int, Field(gt=0, le=4_000_000)] = 9600
    parity: Literal["N", "E", "O"] = "N"
    stopbits: Literal[1, 2] = 1
    bytesize: Literal[7, 8] = 8
    host: str | None = None
    """Without ``source``, TCP: the device's or gateway's host."""
    tcp_port: Annotated[int, Field(gt=0, le=65535)] = 502
    timeout_s: Annotated[float, Field(gt=0, le=30)] = 0.5
    """Without ``source``: seconds to wait for each answer (with ``source``, the
    source's timeout_s applies)."""
    slave: Annotated[int, Field(ge=0, le=255)] = 1
    """The device's address (unit id)."""
    address: Annotated[int, Field(ge=0, le=65535)]
    """Zero-based holding register address (a manual's 40001 numbering: subtract 40001)."""
    data_type: DataType = DataType.UINT16
    """uint16, int16, uint32, int32 or float32 (two registers for the 32-bit types)."""
    word_order: ByteOrder = ByteOrder.BIG
    byte_order: ByteOrder = ByteOrder.BIG
    scale: float = 1.0
    """register = (value - offset) / scale; e.g. a load 0..1 held as 0..1000: 0.001."""
    offset: float = 0.0
    minimum: float = 0.0
    maximum: float = 1.0
    """The values accepted (control units): outside, refused, never clipped."""
    safe_value: float | None = None
    """Written when an alarm naming this action is raised, and held while it is active;
    None: alarms do not touch the output."""
    function: Literal[6, 16] = 16
    """16: write multiple registers (any type); 6: write single register (a 16-bit type
    only; some drives take nothing else)."""
    verify: bool = True
    """Read the register back after each write; a different value is an error."""
    retries: Annotated[int, Field(ge=0, le=10)] = 2
    """Writes without an answer retried (with backoff) before counting as failed; an
    exception answer is never retried."""
    backoff: BackoffConfig = BackoffConfig(initial_s=0.2, max_s=5.0)
    """Waits between retries."""

    @model_validator(mode="after")
    def _consistent(self) -> ModbusSetpointConfig:
        problems: list[str] = []
        # port and host say where a bus of its own is (the other bus keys have defaults,
        # which a dumped config repeats).
        own = [key for key in ("port", "host") if getattr(self, key) is not None]
        if self.source is not None and own:
            problems.append(f"source {self.source!r} owns the bus: drop {', '.join(own)}")
        if self.source is None and self.transport is Transport.RTU and not self.port:
            problems.append('transport "rtu" needs port (or source: a Modbus source\'s bus)')
        if self.source is None and self.transport is Transport.TCP and not self.host:
            problems.append('transport "tcp" needs host (or source: a Modbus source\'s bus)')
        if self.data_type is DataType.BOOL:
            problems.append('data_type "bool" is a coil, not a holding register')
        if self.scale == 0 or not math.isfinite(self.scale):
            problems.append(f"scale must be a finite number other than 0, got {self.scale}")
        if not self.minimum < self.maximum:
            problems.append(f"minimum ({self.minimum}) must be below maximum ({self.maximum})")
        safe = self.safe_value
        if safe is not None and not self.minimum <= safe <= self.maximum:
            problems.append(f"safe_value ({safe}) is outside [minimum, maximum]")
        if self.function == 6 and self.data_type.words != 1:
            problems.append(f"function 6 writes one register: {self.data_type.value} needs 16")
        if self.address + self.data_type.words - 1 > 65535:
            problems.append("address + register count goes past 65535")
        if not problems:
            for key in ("minimum", "maximum"):
                try:
                    self.encode(getattr(self, key))
                except ValueError as exc:
                    problems.append(f"{key}: {exc}")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def raw(self, value: float) -> float:
        """The register's number for ``value`` (before encoding)."""
        raw = (value - self.offset) / self.scale
        return raw if self.data_type is DataType.FLOAT32 else float(round(raw))

    def encode(self, value: float) -> tuple[int, ...]:
        """The registers for ``value``. Raises ValueError when it does not fit."""
        raw = self.raw(value)
        try:
            return tuple(encode_value(raw, self.data_type, self.word_order, self.byte_order))
        except (struct.error, OverflowError) as exc:
            raise ValueError(
                f"{value} is {raw:g} in the register, which does not fit {self.data_type.value}"
            ) from exc


class ModbusSetpointAction:
    """Writes a value to a holding register; see the module docstring."""

    def __init__(self, config: ModbusSetpointConfig) -> None:
        self.name = config.name
        self.config = config
        self.counters: dict[str, int] = {
            "posted": 0,
            "written": 0,
            "failed": 0,
            "retried": 0,
            "refused": 0,
            "interlocked": 0,
            "events": 0,
        }
        self.health = DeliveryHealth()
        self.gate = ControlGate(
            config.name, config.minimum, config.maximum, config.safe_value, self.counters
        )
        self.last_value: float | None = None
        """The last value the device took (and, with verify, read back)."""
        self.pending: int = 0
        """Writes posted and not yet answered (0 or 1: a newer one replaces an older)."""
        self._source: ModbusSource | None = None
        self._own: OwnBus | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._what = (
            f"{config.name}: unit {config.slave} holding register {config.address} "
            f"({config.data_type.value})"
        )

    @property
    def is_interlocked(self) -> bool:
        """An alarm naming this action is active and the safe value is held."""
        return self.gate.is_interlocked

    def share_bus(self, source: ModbusSource) -> None:
        """Write through ``source``'s poll thread (called before ``start``)."""
        self._source = source

    def write(self, value: float) -> None:
        """Post ``value`` for writing now (returns at once; the outcome shows in
        ``health``, ``counters`` and ``last_value``). Raises ControlWriteFailed when
        interlocked by an alarm, outside [minimum, maximum], not encodable, before
        ``start`` or while the shared source's bus is down."""
        self.gate.check_write(value)
        self._post(value)

    def _post(self, value: float) -> None:
        self.gate.check_range(value)
        try:
            words = self.config.encode(value)
        except ValueError as exc:
            self.counters["refused"] += 1
            raise ControlWriteFailed(f"{self.name}: {exc}") from exc
        mailbox = self._mailbox()
        source = self._source
        if source is not None and source.health.state is SourceState.DISCONNECTED:
            error = f"{self._what}: the bus of source {source.name} is down"
            self.health.failed(error)
            self.counters["failed"] += 1
            raise ControlWriteFailed(f"{error} ({source.health.last_error})")
        loop = self._loop
        assert loop is not None  # _mailbox() checked that start() ran

        def done(outcome: WriteOutcome) -> None:  # runs in the bus owner's thread
            if not loop.is_closed():
                loop.call_soon_threadsafe(self._settle, value, outcome)

        config = self.config
        mailbox.post(
            RegisterWrite(
                config.slave, config.address, words, config.verify, config.function,
                config.retries, self._what, done,
            )
        )  # fmt: skip
        self.counters["posted"] += 1
        self.pending = 1

    def _mailbox(self) -> WriteMailbox:
        if self._source is not None and self._loop is not None:
            return self._source.writes
        if self._own is not None:
            return self._own.mailbox
        raise ControlWriteFailed(f"{self.name}: not started")

    def _settle(self, value: float, outcome: WriteOutcome) -> None:
        """The bus owner's answer, on the event loop."""
        if outcome.error is None:
            self.pending = 0
            self.counters["written"] += 1
            self.health.succeeded()
            self.last_value = value
            return
        self.health.failed(outcome.error)
        if outcome.is_final:
            self.pending = 0
            self.counters["failed"] += 1
            log.warning(
                "modbus_setpoint %s: writing %.6g failed: %s", self.name, value, outcome.error
            )
        else:
            self.counters["retried"] += 1
            log.info("modbus_setpoint %s: %s; retrying", self.name, outcome.error)

    def notify(self, event: AlarmEvent) -> None:
        """Hold the safe value while an alarm naming this action is active."""
        self.counters["events"] += 1
        safe = self.gate.on_alarm(event)
        if safe is not None:
            try:
                self._post(safe)
            except ControlWriteFailed as exc:
                log.warning("modbus_setpoint %s: the safe value was not sent: %s", self.name, exc)

    async def start(self) -> None:
        """Capture the event loop (answers come back to it); without ``source``, start
        the bus thread (the port or connection opens on the first write)."""
        self._loop = asyncio.get_running_loop()
        if self.config.source is not None and self._source is None:
            raise ControlWriteFailed(
                f"{self.name}: source {self.config.source!r} is not a running Modbus source"
            )
        if self._source is None and self._own is None:
            self._own = OwnBus(self.config, self.config.backoff, self.name)
            self._own.start()

    async def stop(self, timeout_s: float = 5.0) -> None:
        own, self._own = self._own, None
        if own is not None:
            await asyncio.to_thread(own.stop)


def link_buses(actions: Mapping[str, object], sources: Iterable[object]) -> None:
    """Hand each modbus_setpoint action with ``source`` its Modbus source (the bus's one
    owner). Raises ControlWriteFailed when the source named is not a Modbus source
    among ``sources`` (the config check names this earlier: ``bus_problems``)."""
    by_name = {getattr(s, "name", None): s for s in sources}
    for action in actions.values():
        if not isinstance(action, ModbusSetpointAction) or action.config.source is None:
            continue
        source = by_name.get(action.config.source)
        if not isinstance(source, ModbusSource):
            raise ControlWriteFailed(
                f"action {action.name}: source {action.config.source!r} is not a Modbus source"
            )
        action.share_bus(source)


def bus_problems(
    sources: Iterable[tuple[int, object]], actions: Iterable[tuple[int, object]]
) -> list[str]:
    """Config problems between modbus_setpoint actions and the sources ("path: message"):
    a ``source`` that is not a Modbus source, and an RTU port that a Modbus source
    already owns (two masters on one line garble each other's frames)."""
    modbus = {getattr(s, "name", ""): s for _, s in sources if getattr(s, "type", None) == "modbus"}
    ports = {getattr(s, "port", None): name for name, s in modbus.items()}
    problems = []
    for i, action in actions:
        if not isinstance(action, ModbusSetpointConfig):
            continue
        if action.source is not None and action.source not in modbus:
            problems.append(
                f"actions.{i}.source: {action.source!r} is not a Modbus source "
                f"(Modbus sources: {', '.join(sorted(modbus)) or 'none'})"
            )
        owner = ports.get(action.port) if action.port else None
        if action.source is None and action.transport is Transport.RTU and owner is not None:
            problems.append(
                f"actions.{i}.port: {action.port} is the bus of Modbus source {owner!r}: "
                f'set source = "{owner}" (one master per RS-485 line) instead of port'
            )
    return problems


PLUGIN = Plugin(ModbusSetpointConfig, ModbusSetpointAction)
