"""The twin on the running agent: its model, its limits, and answers from the store.

Built at start when the config has a [twin] section. A twin that cannot be loaded (bad
signature, controls that differ from the config) leaves the agent running, per-channel
forecasts and all, and every what-if answers why (``unavailable``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from edge_agent.alarms.rules.base import RuleConfig
from edge_agent.errors import EdgeAgentError
from edge_agent.store.summary import Summary
from edge_agent.twin.config import TwinConfig
from edge_agent.twin.errors import TwinStateIncomplete, TwinUnavailable
from edge_agent.twin.model import LoadedTwin, load_twin
from edge_agent.twin.scenario import Scenario
from edge_agent.twin.shipped import DEFAULT_TWIN_BUNDLE, DEFAULT_TWIN_PUBLIC_KEY
from edge_agent.twin.state import FloatArray, IntervalMean, history_from_summaries
from edge_agent.twin.whatif import Limit, WhatIfAnswer, limits_from_rules, what_if
from edgetwin_contracts.errors import ContractError
from edgetwin_contracts.signing import load_public_key

log = logging.getLogger(__name__)

STALE_PERIODS = 3
"""A state whose last complete period ended longer ago than this many periods is stale."""


class SummaryStore(Protocol):
    """The part of the agent's store the twin reads."""

    def flush(self) -> object: ...
    def summaries(self, channel: str | None, since: float | None, limit: int) -> list[Summary]: ...


@dataclass(frozen=True, slots=True)
class TwinInfo:
    model: str
    channels: list[str]
    outputs: list[str]
    controls: list[str]
    bounds: dict[str, tuple[float, float]]
    period_s: float
    window_steps: int
    horizon_steps: int


class TwinService:
    """What-if answers of the device's twin.

    Args:
        config: the [twin] section.
        resolve: makes a config path absolute (relative to the data dir).
        rules: the alarm rules whose levels a path may cross.
        store: where the interval summaries are.
        clock: UNIX time now.
        installed: twin bundles installed over the air, tried first, in order, each with
            its key file (``edge_agent.twin.ota.start.installed_twins``: the pointer's,
            then the one before it); one that does not load or fit falls through to the
            configured (or shipped) twin.
    """

    def __init__(
        self,
        config: TwinConfig,
        resolve: Callable[[Path], Path],
        rules: Iterable[RuleConfig],
        store: SummaryStore,
        clock: Callable[[], float],
        backend: str = "auto",
        installed: Sequence[tuple[Path, Path]] = (),
    ) -> None:
        self.config = config
        self.limits: list[Limit] = limits_from_rules(rules)
        self._store = store
        self._clock = clock
        self.twin: LoadedTwin | None = None
        self.unavailable = ""
        """Why there is no twin ("" when there is one)."""
        bundle = resolve(config.bundle) if config.bundle else DEFAULT_TWIN_BUNDLE
        key = resolve(config.public_key) if config.public_key else DEFAULT_TWIN_PUBLIC_KEY
        for path, key_file in [*installed, (bundle, key)]:
            twin, self.unavailable = self._load(path, key_file, backend)
            if twin is not None:
                self.twin = twin
                return

    def _load(self, bundle: Path, key: Path, backend: str) -> tuple[LoadedTwin | None, str]:
        """The twin in ``bundle`` if it verifies and has the [twin] controls, else why not."""
        try:
            twin = load_twin(bundle, load_public_key(key), backend=backend)
        except (ContractError, EdgeAgentError, OSError, ValueError) as exc:
            reason = f"twin bundle {bundle} not loaded: {exc}"
            log.error("%s; per-channel forecasts continue", reason)
            return None, reason
        if twin.spec.controls != self.config.controls:
            reason = (
                f"twin bundle {bundle} has controls {twin.spec.controls}, "
                f"[twin] controls are {self.config.controls}"
            )
            log.error("%s; per-channel forecasts continue", reason)
            return None, reason
        return twin, ""

    def swap(self, twin: LoadedTwin) -> LoadedTwin | None:
        """Put ``twin`` in service (a twin update or its rollback) and return the one it
        replaces. One attribute store: whoever reads ``self.twin`` next (a what-if, the
        advisor, the cross-channel residual) gets the new twin; there is no moment
        without one. Call on the event loop."""
        previous = self.twin
        self.twin = twin
        self.unavailable = ""
        return previous

    def info(self) -> TwinInfo | None:
        twin = self.twin
        if twin is None:
            return None
        m = twin.manifest.model
        return TwinInfo(
            model=f"{m.name} {m.version}",
            channels=twin.model.channels,
            outputs=twin.model.outputs,
            controls=twin.model.controls,
            bounds=self._bounds(),
            period_s=twin.period_s,
            window_steps=twin.spec.window_steps,
            horizon_steps=twin.spec.horizon_steps,
        )

    def what_if(self, scenario: Scenario) -> WhatIfAnswer:
        """Roll the twin forward from the latest stored periods.

        Raises TwinUnavailable (no twin), ScenarioInvalid, TwinStateIncomplete.
        """
        twin = self.twin
        if twin is None:
            raise TwinUnavailable(self.unavailable)
        history, _ = self.state(self._clock())
        return what_if(twin, history, scenario, self.limits, self._bounds())

    def state(
        self, now: float, flush: bool = True, periods: int | None = None
    ) -> tuple[FloatArray, float]:
        """The twin's starting state from the stored summaries: (window_steps, channels)
        in the twin's channel order, and when its last period ended (UNIX s).
        ``periods``: that many periods instead of window_steps (more: the model's recent
        errors can be measured on the older ones).

        flush: write the store's buffered rows first (a what-if asked now); the advisor,
        asking every few seconds, reads what the agent's own flushes wrote instead.
        Raises TwinUnavailable (no twin), TwinStateIncomplete (a channel missing or
        short, or the last period ended more than STALE_PERIODS periods before ``now``).
        """
        twin = self.twin
        if twin is None:
            raise TwinUnavailable(self.unavailable)
        period = twin.period_s
        w = twin.spec.window_steps if periods is None else periods
        if flush:
            self._store.flush()
        rows = [
            IntervalMean(s.channel, s.start, s.interval_s, s.count, s.mean)
            for channel in twin.model.channels
            for s in self._store.summaries(channel, now - (w + 3) * period, 10_000)
        ]
        try:
            history, end = history_from_summaries(twin.model.channels, rows, period, w)
        except TwinStateIncomplete:
            latest = self._latest_end(twin.model.channels)
            if latest is None or latest >= now - STALE_PERIODS * period:
                raise
            end = latest
        if end < now - STALE_PERIODS * period:
            raise TwinStateIncomplete(
                f"the latest period every channel has ended {now - end:.0f} s ago; "
                "the twin starts only from the current state"
            )
        return history, end

    def _latest_end(self, channels: list[str]) -> float | None:
        """The end of the newest stored period of any of ``channels`` (None: none)."""
        ends = [
            s.start + s.interval_s for ch in channels for s in self._store.summaries(ch, None, 1)
        ]
        return max(ends, default=None)

    def _bounds(self) -> dict[str, tuple[float, float]]:
        return {name: (low, high) for name, (low, high) in self.config.bounds.items()}
