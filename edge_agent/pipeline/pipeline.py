"""All channels of one agent, fed reading by reading; the same class serves `run` and
the `replay` backtest."""

from __future__ import annotations

from collections.abc import Mapping

from edge_agent.alarms.engine import AlarmEngine
from edge_agent.alarms.model import HealthCondition
from edge_agent.config import AgentConfig
from edge_agent.model.inference.forecaster import Forecaster
from edge_agent.pipeline.channel import ChannelPipeline, SampleObserver, SampleSink
from edge_agent.pipeline.shadow import ShadowGuard
from edge_agent.reading import Reading
from edge_agent.sources.base import SourceState

_DISCONNECTED = frozenset({HealthCondition.DISCONNECTED})


class Pipeline:
    """Routes readings to their channel pipelines, creating a channel on first sight
    (with [channel_defaults]) and checks channel health on ``check_health``."""

    def __init__(
        self,
        config: AgentConfig,
        forecaster: Forecaster,
        engine: AlarmEngine,
        sink: SampleSink,
        channel_sources: Mapping[str, str] | None = None,
        observer: SampleObserver | None = None,
        model_period_s: float | None = None,
    ) -> None:
        """model_period_s: the model's ``input.sample_period_s`` (None: scale-free, it
        runs at each channel's own period)."""
        self._config = config
        self._forecaster = forecaster
        self._model_period_s = model_period_s
        self._engine = engine
        self._sink = sink
        self._observer = observer
        self._channel_sources = dict(channel_sources or {})
        self.channels: dict[str, ChannelPipeline] = {}
        self._guard: ShadowGuard | None = None
        for name in self._channel_sources:
            self._add(name)

    def _add(self, name: str) -> ChannelPipeline:
        channel = ChannelPipeline(
            name,
            self._config.channel(name),
            self._forecaster,
            self._engine,
            self._sink,
            source=self._channel_sources.get(name, ""),
            observer=self._observer,
            model_period_s=self._model_period_s,
        )
        if self._guard is not None:
            channel.swap(self._forecaster, self._guard, self._guard_failed, self._model_period_s)
        self.channels[name] = channel
        return channel

    def accepted_stamps(self) -> list[float | None]:
        """Each channel's last accepted reading time (None: none yet): the device's time."""
        return [c.cleaner.last_accepted_ts for c in list(self.channels.values())]

    @property
    def forecaster(self) -> Forecaster:
        return self._forecaster

    @property
    def guard(self) -> ShadowGuard | None:
        return self._guard

    @property
    def model_period_s(self) -> float | None:
        return self._model_period_s

    def swap(
        self,
        forecaster: Forecaster,
        guard: ShadowGuard | None = None,
        model_period_s: float | None = None,
    ) -> None:
        """Replace every channel's forecaster (the model at ``model_period_s``, its
        ``input.sample_period_s``). Call on the event loop that runs ``process``: it
        then falls between two samples, none lost or processed twice. With ``guard``:
        the previous forecaster runs in shadow until the guard is done; a failure of the
        new one swaps back to ``guard.previous`` (at ``guard.previous_period_s``) at once."""
        if forecaster.window_length != self._forecaster.window_length:
            raise ValueError("the new forecaster has another window length")
        self._forecaster = forecaster
        self._guard = guard
        self._model_period_s = model_period_s
        for channel in self.channels.values():
            channel.swap(forecaster, guard, self._guard_failed if guard else None, model_period_s)

    def end_guard(self) -> None:
        """Stop the shadow runs; the current forecaster stays."""
        self.swap(self._forecaster, None, self._model_period_s)

    def _guard_failed(self) -> None:
        guard = self._guard
        if guard is not None:
            self.swap(guard.previous, None, guard.previous_period_s)

    def feed_periods(self) -> dict[str, float | None]:
        """Per channel, how often it delivers a sample (``ChannelPipeline.feed_period_s``):
        a model with a shorter period cannot be fed from it."""
        return {name: channel.feed_period_s for name, channel in self.channels.items()}

    def process(self, reading: Reading) -> None:
        channel = self.channels.get(reading.channel)
        if channel is None:
            channel = self._add(reading.channel)
        cleaner = channel.cleaner
        was_stuck = cleaner.is_stuck
        channel.process(reading.ts, reading.value)
        if cleaner.is_stuck is not was_stuck:
            # Stuck begins and ends with a reading: told at its timestamp, not at the next
            # tick (which a fast-forwarded or replayed stream leaves minutes behind).
            self._engine.on_health(channel.name, reading.ts, cleaner.health(reading.ts))

    def health(
        self, channel: ChannelPipeline, now: float, sources: Mapping[str, SourceState]
    ) -> frozenset[HealthCondition]:
        conditions = channel.cleaner.health(now)  # shared frozensets: no allocation
        if sources.get(channel.source) is SourceState.DISCONNECTED:
            return conditions | _DISCONNECTED
        return conditions

    def check_health(self, now: float, sources: Mapping[str, SourceState]) -> None:
        """Feed each channel's health to the alarm engine (called on a timer, and in a
        backtest on data time)."""
        for channel in self.channels.values():
            self._engine.on_health(channel.name, now, self.health(channel, now, sources))
