"""An action that records what it is given: for tests, the demo and backtests.

Like gpiozero's mock pins it is a real action (it satisfies ``Action``), so code under test
needs no patching: hand it to the ``AlarmEngine`` and read ``events`` afterwards.
"""

from __future__ import annotations

from edge_agent.alarms.model import AlarmEvent


class RecordingAction:
    """Keeps every event it is notified of, in order (unbounded: not for production),
    or the first ``max_events`` of them (all counted in ``counters["recorded"]``)."""

    def __init__(self, name: str = "recording", max_events: int | None = None) -> None:
        self.name = name
        self.max_events = max_events
        self.events: list[AlarmEvent] = []
        self.counters: dict[str, int] = {"recorded": 0}
        self.is_running = False

    def notify(self, event: AlarmEvent) -> None:
        if self.max_events is None or len(self.events) < self.max_events:
            self.events.append(event)
        self.counters["recorded"] += 1

    async def start(self) -> None:
        self.is_running = True

    async def stop(self, timeout_s: float = 5.0) -> None:
        self.is_running = False
