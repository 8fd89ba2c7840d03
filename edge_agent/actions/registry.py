"""The registry of action plugins: config type → implementation, an explicit list.

Adding a plugin: its module declares a config model with
``type: Literal["gpio"]`` and a class implementing ``edge_agent.actions.base.Action``;
add the config to ``ActionConfig`` (actions/config.py) and a branch here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import assert_never

from edge_agent.actions.base import Action
from edge_agent.actions.config import (
    ActionConfig,
    GpioOutputActionConfig,
    LogActionConfig,
    WebhookActionConfig,
)
from edge_agent.actions.gpio_output import GpioOutputAction
from edge_agent.actions.log import LogAction
from edge_agent.actions.webhook import WebhookAction


def build_action(config: ActionConfig) -> Action:
    """Build the action a config describes (nothing started, no I/O)."""
    if isinstance(config, LogActionConfig):
        return LogAction(config)
    if isinstance(config, WebhookActionConfig):
        return WebhookAction(config)
    if isinstance(config, GpioOutputActionConfig):
        return GpioOutputAction(config)
    assert_never(config)


def build_actions(configs: Mapping[str, ActionConfig]) -> dict[str, Action]:
    """Build every action by name, e.g. from ``AgentConfig.actions_by_name()``."""
    return {name: build_action(config) for name, config in configs.items()}
