"""The log action."""

from __future__ import annotations

import asyncio
import logging

import pytest

from edge_agent.actions.log import LogAction, LogActionConfig
from edge_agent.alarms.model import Alarm, AlarmEvent, AlarmEventKind, AlarmState, Severity


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
