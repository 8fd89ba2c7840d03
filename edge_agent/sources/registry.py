"""The source plugins: the one list, the ``[[sources]]`` config union derived from it, and
the table from a validated config to its plugin. No import side effects.

Adding a source (docs/architecture.md, "Adding a plugin"): a module declaring its config
(``type: Literal["key"]``, based on ``SourceConfigBase``), its implementation and
``PLUGIN = Plugin(Config, Implementation)``, and one line in ``PLUGINS`` below.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeAlias

from edge_agent.sources import gpio, onewire, replay, serial, tcp
from edge_agent.sources.base import Source, SourceConfigBase
from edge_agent.sources.modbus import source as modbus
from edgetwin_common.plugins import PluginTable

__all__ = ["SOURCES", "SourceConfig", "build_source"]

SOURCES: PluginTable[Source] = PluginTable(
    "source",
    [
        serial.PLUGIN,
        replay.PLUGIN,
        modbus.PLUGIN,
        gpio.PLUGIN,
        onewire.PLUGIN,
        tcp.PLUGIN,
    ],
)
"""Every source plugin, in the order the configuration reference lists them."""

if TYPE_CHECKING:
    SourceConfig: TypeAlias = SourceConfigBase
else:
    SourceConfig = SOURCES.union()
"""Any source plugin's config, discriminated on ``type`` (what ``[[sources]]`` holds)."""


def build_source(config: SourceConfigBase) -> Source:
    """The source for a validated source config. Opens nothing: ports, pins and files
    are opened by ``stream()`` (a replay file also by ``iter_readings()``/``channels()``).

    Raises TypeError for a config type with no plugin (a programming error: add the
    plugin to ``SOURCES``).
    """
    return SOURCES.build(config)
