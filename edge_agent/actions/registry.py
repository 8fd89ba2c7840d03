"""The action plugins: the one list, the ``[[actions]]`` config union derived from it, and
the table from a validated config to its plugin. No import side effects.

Adding an action (docs/architecture.md, "Adding a plugin"): a module declaring its config
(``type: Literal["key"]``, based on ``ActionConfigBase``), its implementation of
``Action`` and ``PLUGIN = Plugin(Config, Implementation)``, and one line in ``ACTIONS``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, TypeAlias

from edge_agent.actions import (
    gpio_output,
    gpio_pwm,
    log,
    modbus_setpoint,
    mqtt,
    setpoint,
    webhook,
)
from edge_agent.actions.base import Action, ActionConfigBase
from edgetwin_common.plugins import PluginTable

__all__ = ["ACTIONS", "ActionConfig", "build_action", "build_actions", "is_control_output"]

ACTIONS: PluginTable[Action] = PluginTable(
    "action",
    [
        log.PLUGIN,
        webhook.PLUGIN,
        gpio_output.PLUGIN,
        mqtt.PLUGIN,
        setpoint.PLUGIN,
        modbus_setpoint.PLUGIN,
        gpio_pwm.PLUGIN,
    ],
)
"""Every action plugin, in the order the configuration reference lists them."""

if TYPE_CHECKING:
    ActionConfig: TypeAlias = ActionConfigBase
else:
    ActionConfig = ACTIONS.union()
"""Any action plugin's config, discriminated on ``type`` (what ``[[actions]]`` holds)."""


def build_action(config: ActionConfigBase) -> Action:
    """Build the action a config describes (nothing started, no I/O). Raises TypeError
    for a config type with no plugin (a programming error: add it to ``ACTIONS``)."""
    return ACTIONS.build(config)


def build_actions(configs: Mapping[str, ActionConfigBase]) -> dict[str, Action]:
    """Build every action by name, e.g. from ``AgentConfig.actions_by_name()``."""
    return {name: build_action(config) for name, config in configs.items()}


def is_control_output(config: ActionConfigBase) -> bool:
    """Whether the action writes a control value (the advisor's ``output``): setpoint,
    modbus_setpoint, gpio_pwm, or a webhook with a ``control`` table."""
    if config.type in ("setpoint", "modbus_setpoint", "gpio_pwm"):
        return True
    return config.type == "webhook" and getattr(config, "control", None) is not None
