"""1-Wire DS18B20 temperature sensors through the kernel's w1 driver (w1-gpio, w1_therm).

Each sensor is a folder ``<devices_dir>/28-xxxxxxxxxxxx`` whose ``w1_slave`` file, when
read, makes the kernel start a conversion (up to 750 ms at 12 bits) and print the
scratchpad twice, with its CRC verdict on the first line:

    72 01 4b 46 7f ff 0e 10 57 : crc=57 YES
    72 01 4b 46 7f ff 0e 10 57 t=23125

A read with ``NO`` (noise on a long cable, a weak pull-up) is rejected and counted, and
so is 85.000 °C read from the power-on scratchpad (``50 05 ...``: the sensor reset and
had not converted yet, the classic DS18B20 glitch). Reads block, so they run in the
source's own thread.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, model_validator

from edge_agent.reading import Reading
from edge_agent.sources.base import SourceConfigBase, SourceState
from edge_agent.sources.threaded import QUEUE_FULL, Emit, ThreadedSource
from edgetwin_common.config import Name, Strict
from edgetwin_common.plugins import Plugin

__all__ = [
    "COUNTERS",
    "PLUGIN",
    "SENSOR_COUNTERS",
    "OneWireSensor",
    "OneWireSource",
    "OneWireSourceConfig",
    "W1Outcome",
    "parse_w1_slave",
    "sensor_counter",
]


class W1Outcome(StrEnum):
    """What became of one read of a sensor; the value is the counter name."""

    OK = "reads_ok"
    CRC_ERROR = "crc_errors"
    """The kernel says the scratchpad's CRC did not match (``crc=.. NO``): rejected."""
    POWER_ON_RESET = "power_on_resets"
    """85.000 °C from the power-on scratchpad: the sensor browned out; rejected."""
    GARBAGE = "reads_garbage"
    """Not the kernel's format (truncated, no t=)."""
    MISSING = "reads_missing"
    """No w1_slave file, or it cannot be read: the sensor is unplugged or the w1 master
    (the dtoverlay) is not loaded."""


SENSOR_COUNTERS: tuple[str, ...] = tuple(o.value for o in W1Outcome)
"""Counted per sensor as ``<channel>:<counter>`` and over all sensors as ``<counter>``."""
COUNTERS: tuple[str, ...] = (*SENSOR_COUNTERS, QUEUE_FULL)


def sensor_counter(channel: str, counter: str) -> str:
    return f"{channel}:{counter}"


@dataclass(frozen=True, slots=True)
class W1Read:
    outcome: W1Outcome
    celsius: float | None = None
    detail: str = ""


_POWER_ON_SCRATCHPAD = ("50", "05")


def parse_w1_slave(text: str) -> W1Read:
    """Parse the two lines of a ``w1_slave`` file. Pure; never raises."""
    lines = text.strip().splitlines()
    if len(lines) != 2:
        return W1Read(W1Outcome.GARBAGE, detail=f"{len(lines)} line(s), expected 2")
    first, second = lines
    _scratchpad, sep, verdict = first.rpartition(" : crc=")
    parts = verdict.split()
    if not sep or len(parts) != 2 or parts[1] not in ("YES", "NO"):
        return W1Read(W1Outcome.GARBAGE, detail=f"no CRC verdict: {first[:60]!r}")
    if parts[1] == "NO":
        return W1Read(W1Outcome.CRC_ERROR, detail=f"crc={parts[0]} NO")
    scratchpad, sep, raw = second.rpartition(" t=")
    if not sep:
        return W1Read(W1Outcome.GARBAGE, detail=f"no t=: {second[:60]!r}")
    try:
        millis = int(raw.strip())
    except ValueError:
        return W1Read(W1Outcome.GARBAGE, detail=f"t={raw.strip()[:20]!r} is not a number")
    if millis == 85000 and tuple(scratchpad.split()[:2]) == _POWER_ON_SCRATCHPAD:
        return W1Read(W1Outcome.POWER_ON_RESET, detail="85.000 °C power-on value")
    return W1Read(W1Outcome.OK, millis / 1000.0)


class OneWireSensor(Strict):
    id: Annotated[str, Field(pattern=r"^[0-9a-f]{2}-[0-9a-f]{12}$")]
    """The kernel's name of the sensor, e.g. 28-00000a1b2c3d (family 28 = DS18B20)."""
    channel: Name
    scale: float = 1.0
    offset: float = 0.0
    """A calibration offset in °C (from an ice-bath check, say)."""


class OneWireSourceConfig(SourceConfigBase):
    """DS18B20 sensors on the w1 bus (``dtoverlay=w1-gpio`` on a Raspberry Pi)."""

    type: Literal["onewire"]
    devices_dir: Path = Path("/sys/bus/w1/devices")
    """Where the kernel lists 1-Wire devices (a fake tree in tests)."""
    period_s: Annotated[float, Field(gt=0, le=3600)] = 5.0
    """Read every sensor this often (a read takes up to 0.75 s per sensor)."""
    sensors: Annotated[list[OneWireSensor], Field(min_length=1)]

    @model_validator(mode="after")
    def _unique(self) -> OneWireSourceConfig:
        problems: list[str] = []
        ids = [s.id for s in self.sensors]
        channels = [s.channel for s in self.sensors]
        for i, sensor in enumerate(self.sensors):
            if sensor.id in ids[:i]:
                problems.append(f"sensors.{i}.id: {sensor.id!r} is listed twice")
            if sensor.channel in channels[:i]:
                problems.append(f"sensors.{i}.channel: {sensor.channel!r} is used twice")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def channel_names(self) -> list[str]:
        return [s.channel for s in self.sensors]


class OneWireSource(ThreadedSource):
    """Readings from DS18B20 sensors (see ``OneWireSourceConfig``).

    State: CONNECTED while at least one sensor reads; DISCONNECTED when a round read
    none (the last failure in ``last_error``). A sensor failing alone shows in its
    counters and, through the channel's staleness, as a health alarm.
    """

    config: OneWireSourceConfig

    def __init__(
        self,
        config: OneWireSourceConfig,
        *,
        clock: Callable[[], float] = time.time,
        queue_size: int = 1024,
    ) -> None:
        super().__init__(config, COUNTERS, clock=clock, queue_size=queue_size)
        counters = self.health.counters
        for sensor in config.sensors:
            for counter in SENSOR_COUNTERS:
                counters[sensor_counter(sensor.channel, counter)] = 0

    def _join_timeout_s(self) -> float:
        # A round of reads is not interruptible: wait for it.
        return 1.0 * len(self.config.sensors) + 2.0

    def read_round(self) -> list[Reading]:
        """Read every sensor once (blocking), count each outcome, update the state."""
        counters = self.health.counters
        readings: list[Reading] = []
        failure: str | None = None
        for sensor in self.config.sensors:
            path = self.config.devices_dir / sensor.id / "w1_slave"
            try:
                text = path.read_text(encoding="ascii", errors="replace")
            except OSError as exc:
                result = W1Read(W1Outcome.MISSING, detail=exc.strerror or str(exc))
            else:
                result = parse_w1_slave(text)
            counters[result.outcome.value] += 1
            counters[sensor_counter(sensor.channel, result.outcome.value)] += 1
            if result.celsius is None:
                failure = f"{sensor.id} ({sensor.channel}): {result.outcome.value}: {result.detail}"
                self.health.last_error = failure
                continue
            value = result.celsius * sensor.scale + sensor.offset
            if math.isfinite(value):
                readings.append(Reading(self._clock(), sensor.channel, value))
        if readings:
            self.health.last_reading_ts = readings[-1].ts
            self._change(SourceState.CONNECTED, None)
        else:
            self._change(SourceState.DISCONNECTED, failure)
        return readings

    def _run(self, stop: threading.Event, emit: Emit) -> None:
        while not stop.is_set():
            started = time.monotonic()
            if not emit(self.read_round()):
                return
            # The period is from start to start: slow reads do not stretch it.
            if stop.wait(max(0.0, self.config.period_s - (time.monotonic() - started))):
                return

    def _connected_text(self) -> str:
        return "sensors reading"

    def _disconnected_text(self, error: str | None) -> str:
        return f"no sensor reads ({error})"


PLUGIN = Plugin(OneWireSourceConfig, OneWireSource)
