"""The cross-channel surprise on the running agent: once per completed twin period.

Each tick (``on_tick``, from the agent's ticker every 0.5 s) costs one comparison until
a new twin period can have been stored; then the last ``window_steps + 1`` periods come
from the store's interval summaries (``TwinService.state``, the rows the what-if and the
advisor start from), the twin predicts the last period of every output channel from the
window before it and the last period's actual controls (one int8 invoke, on an
interpreter of its own: the what-if's runs in the HTTP threads), and each channel's
miss is scored (``CrossScorer``) and handed to the alarm engine's "cross_above" rules.
Nothing runs per raw sample.

The twin is read from ``TwinService.twin`` at every period, so a twin swapped in (OTA)
applies from its next period on, with scorers that learn its misses afresh. No [twin],
an unavailable twin, a channel missing, a stale state: no surprise (said in
``status()``, logged once per change); the per-channel detector goes on meanwhile.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np
import numpy.typing as npt

from edge_agent.alarms.rules.cross import CrossReading
from edge_agent.twin.batch import TwinBatch
from edge_agent.twin.cross.config import CrossConfig
from edge_agent.twin.cross.scorer import CrossScorer
from edge_agent.twin.errors import TwinError
from edge_agent.twin.model import LoadedTwin
from edge_agent.twin.service import TwinService
from edgetwin_common.errors import EdgetwinError

if TYPE_CHECKING:
    from edge_agent.config import AgentConfig

__all__ = ["CrossChannel", "CrossSink", "CrossStatus", "cross_channel"]

log = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]

RETRY_S = 5.0
"""Seconds between two reads of the store while a period that has ended is not stored yet
(the agent flushes every flush_interval_s)."""

MAX_CATCH_UP = 10
"""Stored periods scored in one tick beyond the newest, when ticks fell behind (a slow
tick, a store unavailable for a while, a fast-forward): each in turn, so the sum still
covers explain_periods periods. More behind than this: the older ones are skipped."""


class CrossSink(Protocol):
    """Where the surprises go (the alarm engine)."""

    def on_cross(self, channel: str, ts: float, reading: CrossReading) -> None: ...


@dataclass(frozen=True, slots=True)
class CrossStatus:
    """What the detector is doing: ``off`` says why it scores nothing ("" when it
    scores); ``latest`` each channel's last reading; ``periods`` periods scored."""

    off: str
    periods: int
    latest: Mapping[str, CrossReading]


class CrossChannel:
    """The cross-channel detector of one agent.

    config: [twin.cross] (None: there is no [twin], the detector is off).
    service: the agent's twin (None: no [twin]).
    sink: the alarm engine.
    units: each channel's unit, for the reason's words.
    """

    def __init__(
        self,
        config: CrossConfig | None,
        service: TwinService | None,
        sink: CrossSink,
        units: Mapping[str, str] | None = None,
    ) -> None:
        self.config = config or CrossConfig(enabled=False)
        self._service = service
        self._sink = sink
        self._units = dict(units or {})
        self._twin: LoadedTwin | None = None
        self._batch: TwinBatch | None = None
        self._scorers: dict[str, CrossScorer] = {}
        self._explained_by: dict[str, tuple[str, ...]] = {}
        self._next_try = -math.inf
        self._last_end = -math.inf
        self.periods = 0
        """Periods scored."""
        self.latest: dict[str, CrossReading] = {}
        """Each channel's last reading (a scored period)."""
        self.off = ""
        """Why nothing is scored now ("" when it scores)."""
        if service is None or config is None:
            self.off = "no [twin] section: the cross-channel surprise is off"
        elif not self.config.enabled:
            self.off = "[twin.cross] enabled = false"

    def status(self) -> CrossStatus:
        return CrossStatus(self.off, self.periods, dict(self.latest))

    def on_tick(self, now: float) -> None:
        """Score the newest twin period if it is stored and not scored yet; ``now`` in
        UNIX s. Never raises for a missing twin, state or channel (``off`` says why)."""
        if now < self._next_try or self._service is None or not self.config.enabled:
            return
        self._next_try = now + RETRY_S
        twin = self._service.twin
        if twin is None:
            self._say(f"the twin is unavailable: {self._service.unavailable}")
            return
        if twin is not self._twin:
            self._use(twin)
        w = twin.spec.window_steps
        try:
            history, end = self._service.state(now, flush=False, periods=w + 1)
        except TwinError as exc:  # a channel missing or short, a stale state, no twin
            self._say(f"waiting for the twin's state: {exc}")
            return
        if end <= self._last_end:
            return
        period = twin.period_s
        if math.isfinite(self._last_end):
            self._catch_up(now, end, min(MAX_CATCH_UP, round((end - self._last_end) / period) - 1))
        self.score_period(history, end)
        self._next_try = end + twin.period_s  # the next period cannot be stored before

    def _catch_up(self, now: float, end: float, behind: int) -> None:
        """Score the ``behind`` stored periods before the one ending at ``end`` that no
        tick scored, oldest first (each a one-period miss the sum would otherwise lose)."""
        if behind <= 0 or self._service is None or self._twin is None:
            return
        w, period = self._twin.spec.window_steps, self._twin.period_s
        try:
            longer, last = self._service.state(now, flush=False, periods=w + 1 + behind)
        except TwinError:
            return  # the older periods are incomplete: the newest alone is scored
        if last != end:
            return
        for i in range(behind):
            self.score_period(longer[i : i + w + 1], end - (behind - i) * period)

    def score_period(self, history: FloatArray, end: float) -> dict[str, CrossReading]:
        """Score the last row of ``history`` ((window_steps + 1, channels), the twin's
        channel order, channel units; the period ending at ``end``, UNIX s) against the
        twin's prediction from the rows before it, and hand each reading to the sink. A
        channel whose mean is not finite gets no reading; a window or control that is
        not finite, none at all (``off`` says why). Returns the readings."""
        twin = self._service.twin if self._service is not None else None
        if twin is None or not self.config.enabled:
            return {}
        if twin is not self._twin:
            self._use(twin)
        assert self._batch is not None
        model = twin.model
        w, n_out = twin.spec.window_steps, len(model.outputs)
        h = np.asarray(history, dtype=np.float64)
        shape = (w + 1, len(model.channels))
        if h.shape != shape:
            self._say(f"the cross-channel state has shape {h.shape}, not {shape}")
            return {}
        controls = h[w:, n_out:]
        if not np.all(np.isfinite(controls)):
            self._say(f"the controls' last period means are not finite: {controls[0].tolist()}")
            return {}
        try:
            predicted = self._batch.roll(h[:w], controls[None])[0, 0]
        except (TwinError, EdgetwinError) as exc:
            self._say(f"the twin could not predict the last period: {exc}")
            return {}
        self._last_end = max(self._last_end, end)
        self.periods += 1
        self._say("")
        out: dict[str, CrossReading] = {}
        for j, channel in enumerate(model.outputs):
            scorer = self._scorers.get(channel)
            actual, expected = float(h[w, j]), float(predicted[j])
            if scorer is None or not (math.isfinite(actual) and math.isfinite(expected)):
                continue
            surprise = scorer.score(actual, expected)
            if surprise is None:
                continue
            reading = CrossReading(
                surprise=surprise,
                actual=actual,
                predicted=expected,
                unexplained=scorer.unexplained,
                periods=self.config.explain_periods,
                period_s=twin.period_s,
                explained_by=self._explained_by[channel],
                unit=self._units.get(channel, ""),
            )
            out[channel] = self.latest[channel] = reading
            self._sink.on_cross(channel, end, reading)
        return out

    def _use(self, twin: LoadedTwin) -> None:
        """Start on ``twin`` (the first one, or one swapped in): its own interpreter, and
        scorers that learn its misses from scratch (the last twin's typical miss says
        nothing of this one's)."""
        model = twin.model
        wanted = self.config.channels
        scored = [c for c in model.outputs if wanted is None or c in wanted]
        try:
            batch = TwinBatch(model, 1, 1)
        except EdgetwinError as exc:
            self._twin, self._batch = None, None
            self._say(f"the twin's interpreter could not be built: {exc}")
            return
        if self._twin is not None:
            log.info("cross-channel surprise: a new twin (%s); scorers warm up again", twin.path)
        self._twin, self._batch = twin, batch
        self._scorers = {c: CrossScorer(self.config) for c in scored}
        controls = list(model.controls)
        self._explained_by = {
            c: tuple(controls + [o for o in model.outputs if o != c]) for c in scored
        }
        self.latest = {}
        self._last_end = -math.inf
        missing = sorted(set(wanted or ()) - set(model.outputs))
        if missing:
            log.warning(
                "[twin.cross] channels %s are not outputs of the twin %s; not scored",
                missing,
                model.outputs,
            )

    def _say(self, why: str) -> None:
        """Log a change of ``off`` once, not every tick."""
        if why == self.off:
            return
        if why:
            log.warning("cross-channel surprise off: %s; per-channel detection continues", why)
        else:
            log.info("cross-channel surprise scoring")
        self.off = why


def cross_channel(
    config: AgentConfig, service: TwinService | None, sink: CrossSink
) -> CrossChannel:
    """The agent's cross-channel detector (off without [twin]); units from [channels]."""
    units = {name: c.unit for name, c in config.channels.items() if c.unit}
    section = config.twin
    return CrossChannel(None if section is None else section.cross, service, sink, units)
