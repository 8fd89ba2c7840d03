"""The "log" action: one structured log line per alarm event."""

from __future__ import annotations

import logging
from typing import Literal

from edge_agent.actions.base import ActionConfigBase
from edge_agent.actions.health import DeliveryHealth
from edge_agent.alarms.model import AlarmEvent, AlarmEventKind
from edgetwin_common.plugins import Plugin

__all__ = ["LOGGER_NAME", "PLUGIN", "LogAction", "LogActionConfig"]

_LEVELS = {"info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}

LOGGER_NAME = "edge_agent.alarms"


class LogActionConfig(ActionConfigBase):
    """One log line per alarm event (logger ``edge_agent.alarms``)."""

    type: Literal["log"]
    level: Literal["info", "warning", "error"] = "warning"
    """Level of the line for a raise; acknowledgements and clears log at info."""


class LogAction:
    """Logs each event to the ``edge_agent.alarms`` logger: raises at the configured level,
    acknowledgements and clears at INFO. The whole event (``AlarmEvent.to_dict()``) is
    attached as ``extra={"alarm_event": ...}`` for the JSON log formatter."""

    def __init__(self, config: LogActionConfig, logger: logging.Logger | None = None) -> None:
        self.name = config.name
        self.config = config
        self.counters: dict[str, int] = {"logged": 0}
        self.health = DeliveryHealth()
        self._level = _LEVELS[config.level]
        self._logger = logger or logging.getLogger(LOGGER_NAME)

    def notify(self, event: AlarmEvent) -> None:
        alarm = event.alarm
        level = self._level if event.kind is AlarmEventKind.RAISED else logging.INFO
        self._logger.log(
            level,
            "alarm %s %s: %s on %s [%s, %s] %s",
            alarm.id,
            event.kind.value,
            alarm.rule,
            alarm.channel,
            alarm.severity.value,
            alarm.state.value,
            alarm.message,
            extra={"alarm_event": event.to_dict()},
        )
        self.counters["logged"] += 1
        self.health.succeeded()

    async def start(self) -> None:
        """Nothing to start: logging is synchronous."""

    async def stop(self, timeout_s: float = 5.0) -> None:
        """Nothing queued, nothing to drain."""


PLUGIN = Plugin(LogActionConfig, LogAction)
