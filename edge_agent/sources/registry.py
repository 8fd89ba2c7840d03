"""The source plugins by config type: an explicit table, no import side effects."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from edge_agent.sources.base import Source
from edge_agent.sources.gpio import GpioSource, GpioSourceConfig
from edge_agent.sources.modbus.config import ModbusSourceConfig
from edge_agent.sources.modbus.source import ModbusSource
from edge_agent.sources.onewire import OneWireSource, OneWireSourceConfig
from edge_agent.sources.replay import ReplaySource, ReplaySourceConfig
from edge_agent.sources.serial import SerialSource, SerialSourceConfig

__all__ = ["SourceConfig", "build_source"]

SourceConfig = (
    SerialSourceConfig
    | ReplaySourceConfig
    | ModbusSourceConfig
    | GpioSourceConfig
    | OneWireSourceConfig
)

_PLUGINS: dict[type[Any], Callable[..., Source]] = {
    SerialSourceConfig: SerialSource,
    ReplaySourceConfig: ReplaySource,
    ModbusSourceConfig: ModbusSource,
    GpioSourceConfig: GpioSource,
    OneWireSourceConfig: OneWireSource,
}


def build_source(config: SourceConfig) -> Source:
    """The source for a validated source config. Opens nothing: ports, pins and files
    are opened by ``stream()`` (a replay file also by ``iter_readings()``/``channels()``).

    Raises TypeError for a config type with no plugin (a programming error: add the
    plugin to the table above and to ``edge_agent.config.SourceConfig``).
    """
    try:
        plugin = _PLUGINS[type(config)]
    except KeyError:
        raise TypeError(f"no source plugin for {type(config).__name__}") from None
    return plugin(config)
