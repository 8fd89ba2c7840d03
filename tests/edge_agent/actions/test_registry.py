"""Building actions through the registry, and the Action protocol."""

from __future__ import annotations

import pytest
from pydantic import TypeAdapter, ValidationError

from edge_agent.actions.base import Action
from edge_agent.actions.gpio_output import GpioOutputAction
from edge_agent.actions.log import LogAction, LogActionConfig
from edge_agent.actions.recording import RecordingAction
from edge_agent.actions.registry import ActionConfig, build_action, build_actions
from edge_agent.actions.webhook import WebhookAction

CONFIGS: TypeAdapter[list[ActionConfig]] = TypeAdapter(list[ActionConfig])


def test_registry_builds_each_type() -> None:
    configs = CONFIGS.validate_python(
        [
            {"type": "log", "name": "log"},
            {"type": "webhook", "name": "ops", "url": "https://ops.example/hook"},
            {"type": "gpio", "name": "lamp", "pin": 27, "pin_factory": "mock"},
        ]
    )
    actions = build_actions({c.name: c for c in configs})
    assert isinstance(actions["log"], LogAction)
    assert isinstance(actions["ops"], WebhookAction)
    assert isinstance(actions["lamp"], GpioOutputAction)
    assert build_action(configs[1]).name == "ops"


def test_unknown_action_type_is_a_config_error() -> None:
    with pytest.raises(ValidationError):
        CONFIGS.validate_python([{"type": "gpio", "name": "lamp"}])


def test_every_action_satisfies_the_protocol() -> None:
    def accept(action: Action) -> str:
        return action.name

    assert accept(LogAction(LogActionConfig(type="log", name="log"))) == "log"
    assert accept(RecordingAction()) == "recording"
