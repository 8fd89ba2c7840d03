"""The advisor inside the agent: built from the ``[advisor]`` section, fed every reading
(on the event loop), stepping on the data's clock, and answering the HTTP routes.

The agent calls ``on_reading`` for each reading and ``on_sources`` at each tick; the
advisor steps when a reading's timestamp passes the next step time, so a replay at any
speed decides at the same data times.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

from edge_agent.reading import Reading
from edge_agent.simulator.observer import PumpObserver
from edge_agent.sources.base import SourceState
from edge_agent.twin.advisor.advisor import Advisor, AlarmSink, ControlOutput, Predictor
from edge_agent.twin.advisor.config import AdvisorConfig
from edge_agent.twin.advisor.errors import PredictionFailed
from edge_agent.twin.advisor.twin_predictor import TwinPredictor
from edge_agent.twin.service import TwinService

__all__ = ["AdvisorService", "advisor_service"]

log = logging.getLogger(__name__)


def advisor_service(
    config: AdvisorConfig | None,
    outputs: Mapping[str, object],
    alarms: AlarmSink | None,
    twin: TwinService | None,
) -> AdvisorService | None:
    """The agent's advisor, when the config has [advisor] (None otherwise)."""
    return None if config is None else AdvisorService(config, outputs, alarms, twin)


class AdvisorService:
    """One advisor and its predictor (``observer``: the physics observer or the twin's
    adapter, fed every reading). ``outputs``: the agent's actions by name (the one
    named by ``config.output`` must have ``write(value)``)."""

    def __init__(
        self,
        config: AdvisorConfig,
        outputs: Mapping[str, object],
        alarms: AlarmSink | None,
        twin: TwinService | None = None,
    ) -> None:
        self.config = config
        self.observer: PumpObserver | TwinPredictor
        if config.predictor == "twin":
            if twin is None:
                raise ValueError('advisor.predictor "twin" needs the [twin] section\'s twin')
            self.observer = TwinPredictor(twin, config.control, config.twin_residual_periods)
        else:
            self.observer = PumpObserver(period_s=config.step_s, failure=PredictionFailed)
        predictor: Predictor = self.observer
        output: ControlOutput | None = None
        if config.output is not None:
            candidate = outputs.get(config.output)
            if candidate is None or not callable(getattr(candidate, "write", None)):
                raise ValueError(
                    f"advisor.output {config.output!r} is not an action that writes a value "
                    "(setpoint, modbus_setpoint, gpio_pwm or webhook)"
                )
            output = candidate  # type: ignore[assignment]
        self.advisor = Advisor(config, predictor, output if config.enabled else None, alarms)
        self._next_step: float | None = None
        self._last_ts: float | None = None
        self._last_monotonic = time.monotonic()

    def on_reading(self, reading: Reading) -> None:
        """Feed one reading; steps the advisor when its time has come."""
        self.observer.observe(reading.channel, reading.ts, reading.value)
        self.advisor.observe(reading.channel, reading.ts)
        self._last_ts = reading.ts
        self._last_monotonic = time.monotonic()
        if self._next_step is None:
            self._next_step = reading.ts + self.config.step_s
        elif reading.ts >= self._next_step:
            self._next_step = reading.ts + self.config.step_s
            self.advisor.step(reading.ts)

    def on_sources(self, states: Mapping[str, SourceState], now: float) -> None:
        """The sources' states at a tick: a disconnected one is a source failure, and
        readings silent for ``stale_after_s`` a sensor failure; either writes the safe
        value at once, without waiting for a reading."""
        was_down = self.advisor.is_source_down
        for name, state in states.items():
            down = state is SourceState.DISCONNECTED
            self.advisor.source_state(name, "disconnected" if down else None)
        if self.advisor.is_source_down and not was_down:
            self.advisor.step(self._data_time(now))
            return
        # No reading at all for stale_after_s: no reading will step the advisor, so the
        # tick does, at the data time the silence has reached (the channels are stale).
        silent = time.monotonic() - self._last_monotonic
        if self._last_ts is not None and silent > self.config.stale_after_s:
            self.advisor.step(self._last_ts + silent)

    def set_override(self, value: float | None, by: str, now: float) -> dict[str, Any]:
        """Apply the operator's override at once (a step at ``now``). Raises
        OverrideInvalid outside the bounds."""
        self.advisor.set_override(value, by)
        if self.config.enabled:
            self.advisor.step(self._data_time(now))
        return self.status()

    def _data_time(self, now: float) -> float:
        # The guards' hold-off runs on the data's clock (the readings' timestamps); a
        # step outside a reading (an override, a source going down) takes the latest.
        return now if self._last_ts is None else max(self._last_ts, 0.0)

    def status(self) -> dict[str, Any]:
        return self.advisor.status()
