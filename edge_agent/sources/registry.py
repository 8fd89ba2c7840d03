"""The source plugins by config type: an explicit table, no import side effects."""

from __future__ import annotations

from collections.abc import Callable

from edge_agent.sources.base import Source
from edge_agent.sources.replay import ReplaySource, ReplaySourceConfig
from edge_agent.sources.serial import SerialSource, SerialSourceConfig

__all__ = ["build_source"]

SourceConfig = SerialSourceConfig | ReplaySourceConfig

_PLUGINS: dict[type[SerialSourceConfig] | type[ReplaySourceConfig], Callable[..., Source]] = {
    SerialSourceConfig: SerialSource,
    ReplaySourceConfig: ReplaySource,
}


def build_source(config: SerialSourceConfig | ReplaySourceConfig) -> Source:
    """The source for a validated source config. Opens nothing: a serial port is opened
    by ``stream()``, a replay file by ``stream()``, ``iter_readings()`` or ``channels()``.

    Raises TypeError for a config type with no plugin (a programming error: add the
    plugin to the table above and to ``edge_agent.config.SourceConfig``).
    """
    try:
        plugin = _PLUGINS[type(config)]
    except KeyError:
        raise TypeError(f"no source plugin for {type(config).__name__}") from None
    return plugin(config)
