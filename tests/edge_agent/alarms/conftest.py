"""An engine wired to recording actions and a list sink."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from pydantic import TypeAdapter

from edge_agent.actions.recording import RecordingAction
from edge_agent.alarms.engine import AlarmEngine
from edge_agent.alarms.model import Alarm, AlarmEvent, AlarmEventKind
from edge_agent.alarms.rules.registry import AlarmRule

RULES: TypeAdapter[list[AlarmRule]] = TypeAdapter(list[AlarmRule])


@dataclass
class Rig:
    engine: AlarmEngine
    log: RecordingAction
    pager: RecordingAction
    events: list[AlarmEvent] = field(default_factory=list)

    def kinds(self) -> list[tuple[AlarmEventKind, str, str]]:
        return [(e.kind, e.alarm.rule, e.alarm.channel) for e in self.events]

    def feed(self, channel: str, values: Sequence[float], t0: float = 0.0, dt: float = 1.0) -> None:
        for i, v in enumerate(values):
            self.engine.on_sample(channel, t0 + i * dt, v)


def build(
    rules: list[dict[str, Any]],
    horizons: Sequence[int] = (1, 2, 4, 8),
    restored: Iterable[Alarm] = (),
    next_id: int = 1,
    **kwargs: Any,
) -> Rig:
    events: list[AlarmEvent] = []
    log, pager = RecordingAction("log"), RecordingAction("pager")
    engine = AlarmEngine(
        RULES.validate_python(rules),
        horizons,
        events.append,
        {"log": log, "pager": pager},
        next_id=next_id,
        restored=restored,
        **kwargs,
    )
    return Rig(engine, log, pager, events)


@pytest.fixture
def rig_factory() -> Any:
    return build
