"""The action registry and the log action."""

from __future__ import annotations

import asyncio
import logging

import pytest
from pydantic import TypeAdapter, ValidationError

from edge_agent.actions.base import Action
from edge_agent.actions.config import ActionConfig, LogActionConfig
from edge_agent.actions.log import LogAction
from edge_agent.actions.recording import RecordingAction
from edge_agent.actions.registry import build_action, build_actions
from edge_agent.actions.webhook import WebhookAction
from edge_agent.alarms.model import Alarm, AlarmEvent, AlarmEventKind, AlarmState, Severity

CONFIGS: TypeAdapter[list[ActionConfig]] = TypeAdapter(list[ActionConfig])


def sample_event(kind: AlarmEventKind) -> AlarmEvent:
    alarm = Alarm(
        3,
        "bearing-hot",
        "bearing",
        "value_above",
        Severity.CRITICAL,
        AlarmState.ACTIVE_UNACKNOWLEDGED,
        10.0,
        87.0,
        "bearing 87 >= 85",
    )
    return AlarmEvent(kind, 10.0, alarm)


def test_registry_builds_each_type() -> None:
    configs = CONFIGS.validate_python(
        [
            {"type": "log", "name": "log"},
            {"type": "webhook", "name": "ops", "url": "https://ops.example/hook"},
        ]
    )
    actions = build_actions({c.name: c for c in configs})
    assert isinstance(actions["log"], LogAction)
    assert isinstance(actions["ops"], WebhookAction)
    assert build_action(configs[1]).name == "ops"


def test_unknown_action_type_is_a_config_error() -> None:
    with pytest.raises(ValidationError):
        CONFIGS.validate_python([{"type": "gpio", "name": "lamp"}])


def test_every_action_satisfies_the_protocol() -> None:
    def accept(action: Action) -> str:
        return action.name

    assert accept(LogAction(LogActionConfig(type="log", name="log"))) == "log"
    assert accept(RecordingAction()) == "recording"


def test_log_action_logs_raises_at_its_level_and_the_rest_at_info(
    caplog: pytest.LogCaptureFixture,
) -> None:
    action = LogAction(LogActionConfig(type="log", name="log", level="error"))
    asyncio.run(action.start())
    with caplog.at_level(logging.INFO, logger="edge_agent.alarms"):
        action.notify(sample_event(AlarmEventKind.RAISED))
        action.notify(sample_event(AlarmEventKind.CLEARED))
    asyncio.run(action.stop())
    assert [r.levelno for r in caplog.records] == [logging.ERROR, logging.INFO]
    first = caplog.records[0]
    assert "alarm 3 raised: bearing-hot on bearing [critical" in first.getMessage()
    assert first.alarm_event == sample_event(AlarmEventKind.RAISED).to_dict()  # type: ignore[attr-defined]
    assert action.counters == {"logged": 2}
