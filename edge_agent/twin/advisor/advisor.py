"""The advisor: search the control value that keeps every predicted channel inside its
limits, show it with its predicted margin, and (only where enabled) write it through
the guards.

The advisor needs a ``Predictor``: per channel, the predicted path under each of a batch
of planned control trajectories. The twin's roll-forward (edge_agent/twin/whatif.py) is
one; ``edge_agent.simulator.observer.PumpObserver`` (the pump's physics from the observed
state, with an estimated unexplained heat) is another.

Each step (every ``step_s`` of data time):

1. failures first: a channel it reads stale for ``stale_after_s``, a source reported
   down, the output failing (its ``health``: a refused or unanswered write), or the
   predictor failing make the step a failure (safe value);
2. otherwise every candidate value in [minimum, maximum] (by ``resolution``) is planned
   as a ramp from the value in force at ``max_rate_per_min``, then held, over
   ``horizon_s``; the predictor predicts them all in one batch; a candidate is feasible
   when every predicted channel stays inside its limits by its margin; the objective
   picks the highest (or lowest) feasible one, or, when none is, the one with the most
   room (the least bad), flagged infeasible;
3. the guards decide what to write; a write goes to the output, is logged and raised as
   an info alarm ("advisor-change"); a failure keeps a warning alarm
   ("advisor-fallback") active until the advisor recovers.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from edge_agent.alarms.model import Severity
from edge_agent.errors import EdgeAgentError
from edge_agent.twin.advisor.config import AdvisorConfig
from edge_agent.twin.advisor.errors import PredictionFailed
from edge_agent.twin.advisor.guards import Change, Decision, Guards, Verdict

__all__ = [
    "CHANGE_ALARM",
    "FALLBACK_ALARM",
    "Advisor",
    "AdvisorStep",
    "AlarmSink",
    "ControlOutput",
    "Predictor",
    "Recommendation",
    "search",
]

log = logging.getLogger(__name__)

CHANGE_ALARM = "advisor-change"
FALLBACK_ALARM = "advisor-fallback"

Paths = npt.NDArray[np.float64]
"""Shape (candidates, steps): one planned or predicted path per row."""


class Predictor(Protocol):
    """Predicts every channel it knows under a batch of planned control paths.

    ``predict(controls, step_s)``: ``controls`` has shape (candidates, steps), the control
    value planned at each future step, ``step_s`` seconds apart, the first one step from
    now; returns, per channel, an array of the same shape. Raises PredictionFailed (not
    warmed up, a channel missing, the model failed).
    """

    def predict(self, controls: Paths, step_s: float) -> Mapping[str, Paths]: ...


class ControlOutput(Protocol):
    """Where a value is written (a ``setpoint`` action's port, a ``modbus_setpoint``
    action's holding register). ``write`` raises an EdgeAgentError (e.g.
    ControlWriteFailed) when it could not; an output that finishes the write later (a
    Modbus exchange in the bus's thread) also has ``health`` (a DeliveryHealth): while
    it is failing, the advisor's steps fail to the safe value."""

    name: str

    def write(self, value: float) -> None: ...


class AlarmSink(Protocol):
    """The alarm engine's internal alarms (``AlarmEngine`` is one)."""

    def raise_internal(
        self, name: str, channel: str, ts: float, message: str, severity: Severity
    ) -> Any: ...

    def clear_internal(self, name: str, channel: str, ts: float) -> None: ...


@dataclass(frozen=True, slots=True)
class Recommendation:
    """The value the search found, and how much room its predictions leave.

    margins: per limited channel, the smallest distance (channel units) between its
    predicted path and its limits over the horizon (negative: predicted outside);
    feasible: every margin is at least the channel's configured margin.
    """

    value: float
    feasible: bool
    margins: dict[str, float]
    tightest: str

    @property
    def margin(self) -> float:
        """The tightest channel's margin."""
        return self.margins[self.tightest]


@dataclass(frozen=True, slots=True)
class AdvisorStep:
    """What one step did: its recommendation (None on failure), the failure, the guards'
    decision and the change written (None when nothing was)."""

    ts: float
    recommendation: Recommendation | None
    failure: str | None
    decision: Decision
    change: Change | None
    output_error: str | None = None


def plan(config: AdvisorConfig, start: float, steps: int) -> Paths:
    """Every candidate as a ramp from ``start`` at the guards' rate, then held."""
    values = config.minimum + config.resolution * np.arange(config.candidates_count())
    values = np.minimum(values, config.maximum)
    reach = config.max_rate_per_min * config.step_s / 60.0 * np.arange(1, steps + 1)
    delta = np.clip(values[:, None] - start, -reach[None, :], reach[None, :])
    return np.asarray(start + delta, dtype=np.float64)


def search(config: AdvisorConfig, predictor: Predictor, start: float) -> Recommendation:
    """The objective's best value whose predictions keep every limit (by its margin) over
    the horizon, planned from ``start`` (the value in force). Raises PredictionFailed."""
    steps = max(1, math.ceil(config.horizon_s / config.step_s))
    controls = plan(config, start, steps)
    predicted = predictor.predict(controls, config.step_s)
    margins: dict[str, npt.NDArray[np.float64]] = {}
    slack = np.full(controls.shape[0], np.inf)
    for channel, limit in config.limits.items():
        paths = predicted.get(channel)
        if paths is None:
            raise PredictionFailed(f"the predictor has no channel {channel!r}")
        if paths.shape != controls.shape or not np.all(np.isfinite(paths)):
            raise PredictionFailed(f"the predicted {channel} paths are malformed or not finite")
        room = np.full(controls.shape[0], np.inf)
        if limit.above is not None:
            room = np.minimum(room, (limit.above - paths).min(axis=1))
        if limit.below is not None:
            room = np.minimum(room, (paths - limit.below).min(axis=1))
        margins[channel] = room
        slack = np.minimum(slack, room - limit.margin)
    feasible = np.flatnonzero(slack >= 0)
    if feasible.size:
        best = int(feasible[-1] if config.objective == "highest" else feasible[0])
    else:
        best = int(np.argmax(slack))
    chosen = {channel: float(room[best]) for channel, room in margins.items()}
    tightest = min(chosen, key=lambda c: chosen[c] - config.limits[c].margin)
    return Recommendation(float(controls[best, -1]), bool(feasible.size), chosen, tightest)


@dataclass
class _Failures:
    stale_after_s: float
    last_seen: dict[str, float] = field(default_factory=dict)
    sources_down: dict[str, str] = field(default_factory=dict)

    def reason(self, channels: list[str], now: float) -> str | None:
        if self.sources_down:
            name, why = next(iter(self.sources_down.items()))
            return f"source {name} is down: {why}"
        for channel in channels:
            seen = self.last_seen.get(channel)
            if seen is None:
                return f"no reading of {channel} yet"
            if now - seen > self.stale_after_s:
                return f"{channel} is stale ({now - seen:.0f} s without a reading)"
        return None


class Advisor:
    """The advisor of one control (docs/advisor.md). Not thread-safe: call it from one
    thread (the agent's event loop, a benchmark's loop).

    channels: what it must see fresh (default: the limited channels); the control's own
    channel is not required (a drive may not report it).
    """

    def __init__(
        self,
        config: AdvisorConfig,
        predictor: Predictor,
        output: ControlOutput | None = None,
        alarms: AlarmSink | None = None,
        channels: list[str] | None = None,
    ) -> None:
        if config.enabled and output is None:
            raise ValueError("an enabled advisor needs its output")
        self.config = config
        self.predictor = predictor
        self.output = output
        self.alarms = alarms
        self.guards = Guards(config)
        self.channels = list(config.limits) if channels is None else channels
        self._failures = _Failures(config.stale_after_s)
        self.last: AdvisorStep | None = None
        self.counters: dict[str, int] = {
            "steps": 0,
            "changes": 0,
            "failures": 0,
            "write_errors": 0,
            "infeasible": 0,
        }

    def observe(self, channel: str, ts: float) -> None:
        """A reading of ``channel`` at ``ts`` (UNIX s) arrived (freshness only)."""
        self._failures.last_seen[channel] = ts

    @property
    def is_source_down(self) -> bool:
        """A source reported down (the step falls back to the safe value)."""
        return bool(self._failures.sources_down)

    def source_state(self, source: str, down: str | None) -> None:
        """A source went down (``down``: why) or came back (None)."""
        if down is None:
            self._failures.sources_down.pop(source, None)
        else:
            self._failures.sources_down[source] = down

    def set_override(self, value: float | None, by: str = "") -> None:
        """The operator's override (None releases it); written at the next step.
        Raises OverrideInvalid outside the bounds."""
        self.guards.set_override(value, by)
        log.info("advisor: override %s by %s", "released" if value is None else value, by or "?")

    def step(self, now: float) -> AdvisorStep:
        """Decide (and, when enabled, write) at data time ``now`` (UNIX s)."""
        self.counters["steps"] += 1
        output_failure = self._output_failure()
        failure = self._failures.reason(self.channels, now) or output_failure
        recommendation: Recommendation | None = None
        if failure is None:
            start = self.guards.applied if self.guards.applied is not None else self.config.maximum
            try:
                recommendation = search(self.config, self.predictor, start)
            except PredictionFailed as exc:
                failure = f"model: {exc}"
        if recommendation is not None and not recommendation.feasible:
            self.counters["infeasible"] += 1
        if failure is not None:
            self.counters["failures"] += 1
        wanted = None if recommendation is None else recommendation.value
        decision = self.guards.decide(now, wanted, failure)
        if output_failure is not None and decision.verdict is Verdict.UNCHANGED:
            # The output failed after taking the value in force (the safe value itself,
            # unanswered or refused): the guards think it is there; send it again, once
            # a step, until a write gets through and the output recovers.
            applied = self.guards.applied
            if applied is not None and self.config.enabled:
                verdict = Verdict.SAFE if self.guards.override is None else Verdict.OVERRIDE
                decision = Decision(applied, verdict, None, f"again: {output_failure}")
        change, error = self._write(now, decision)
        self._alarm_fallback(now, failure)
        self.last = AdvisorStep(now, recommendation, failure, decision, change, error)
        return self.last

    def _output_failure(self) -> str | None:
        # An output that answers later (a Modbus write, done in the bus's thread) tells
        # of a refused or unanswered write through its health: the safe value then.
        health = getattr(self.output, "health", None)
        if self.output is None or not getattr(health, "is_failing", False):
            return None
        return f"output {self.output.name}: {getattr(health, 'last_error', None)}"

    def _write(self, now: float, decision: Decision) -> tuple[Change | None, str | None]:
        if not decision.verdict.writes or decision.value is None or self.output is None:
            return None, None
        try:
            self.output.write(decision.value)
        except EdgeAgentError as exc:
            self.counters["write_errors"] += 1
            # Logged when the error changes, not at every step it lasts (a bus down for
            # minutes); the counter and GET /twin/advisor show each one.
            last = None if self.last is None else self.last.output_error
            log.log(
                logging.DEBUG if last == str(exc) else logging.WARNING,
                "advisor: writing %.4g to %s failed: %s",
                decision.value,
                self.output.name,
                exc,
            )
            return None, str(exc)
        change = self.guards.commit(now, decision)
        self.counters["changes"] += 1
        previous = "none" if change.previous is None else f"{change.previous:.4g}"
        message = (
            f"{self.config.control} {previous} -> {change.value:.4g} ({change.verdict.value}"
            + (f": {change.note}" if change.note else "")
            + ")"
        )
        log.info("advisor: %s via %s", message, self.output.name)
        if self.alarms is not None:
            # Raised and cleared at once: every change is an info event in the alarm log.
            self.alarms.raise_internal(
                CHANGE_ALARM, self.config.control, now, message, Severity.INFO
            )
            self.alarms.clear_internal(CHANGE_ALARM, self.config.control, now)
        return change, None

    def _alarm_fallback(self, now: float, failure: str | None) -> None:
        if self.alarms is None or not self.config.enabled:
            return
        if failure is None:
            self.alarms.clear_internal(FALLBACK_ALARM, self.config.control, now)
        elif self.guards.applied is not None:  # in control: the safe value is in force
            message = f"safe value {self.config.safe:.4g}: {failure}"
            self.alarms.raise_internal(
                FALLBACK_ALARM, self.config.control, now, message, Severity.WARNING
            )

    def status(self) -> dict[str, Any]:
        """What ``GET /twin/advisor`` and the status page show."""
        last = self.last
        rec = None if last is None else last.recommendation
        return {
            "configured": True,
            "enabled": self.config.enabled,
            "control": self.config.control,
            "objective": self.config.objective,
            "output": self.config.output,
            "bounds": [self.config.minimum, self.config.maximum],
            "safe_value": self.config.safe,
            "ts": None if last is None else last.ts,
            "recommended": None if rec is None else rec.value,
            "feasible": None if rec is None else rec.feasible,
            "margin": None if rec is None else rec.margin,
            "tightest": None if rec is None else rec.tightest,
            "margins": {} if rec is None else rec.margins,
            "failure": None if last is None else last.failure,
            "verdict": None if last is None else last.decision.verdict.value,
            "note": None if last is None else last.decision.note,
            "applied": self.guards.applied,
            "last_change_ts": self.guards.last_change_ts,
            "override": self.guards.override,
            "override_by": self.guards.override_by,
            "output_error": None if last is None else last.output_error,
            "changes": [
                {
                    "ts": c.ts,
                    "previous": c.previous,
                    "value": c.value,
                    "verdict": c.verdict.value,
                    "note": c.note,
                }
                for c in reversed(self.guards.changes)
            ],
            "counters": dict(self.counters),
        }
