"""Parts of /status built from the agent's objects: the channels, the sources, each
action's health and the alarm levels in effect per channel. Read from memory only:
/status runs on the event loop."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from edge_agent.actions.base import Action
from edge_agent.actions.health import DeliveryHealth
from edge_agent.alarms.rules.base import ALL_CHANNELS, LevelRule, RuleConfig
from edge_agent.http.status import ActionInfo, AlarmLevel, ChannelInfo, Forecast, SourceInfo
from edge_agent.pipeline.pipeline import Pipeline
from edge_agent.sources.base import Source, SourceState

LEVEL_TYPES = frozenset(
    {"value_above", "value_below", "forecast_above", "forecast_below", "score_above"}
)
"""Rules whose levels belong on the channel's chart: in the channel's own units, or
(score_above) on the anomaly score's axis."""


def source_infos(sources: Iterable[Source]) -> list[SourceInfo]:
    """Each source's state, the time it changed, its last reading and error, counters."""
    return [
        SourceInfo(
            name=src.name,
            type=type(src).__name__,
            state=src.health.state.value,
            since=src.health.since,
            last_reading_ts=src.health.last_reading_ts,
            last_error=src.health.last_error,
            counters=dict(src.health.counters),
        )
        for src in sources
    ]


def action_health(actions: Mapping[str, Action]) -> list[ActionInfo]:
    """One entry per action, by name. An action without ``health`` (one that cannot
    fail, or a test's recorder) reports no success or error times."""
    found = []
    for name, action in sorted(actions.items()):
        health = getattr(action, "health", None)
        if not isinstance(health, DeliveryHealth):
            health = DeliveryHealth()
        config = getattr(action, "config", None)
        counters = dict(action.counters)
        found.append(
            ActionInfo(
                name=name,
                type=str(getattr(config, "type", type(action).__name__)),
                last_success=health.last_success,
                last_error=health.last_error,
                last_error_at=health.last_error_at,
                queue_depth=int(getattr(action, "pending", 0)),
                dropped=counters.get("dropped", 0),
                failed=counters.get("failed", 0),
                is_failing=health.is_failing,
                counters=counters,
            )
        )
    return found


def alarm_levels(
    rules: Iterable[RuleConfig], in_effect: Callable[[str], RuleConfig], channels: Iterable[str]
) -> list[AlarmLevel]:
    """The levels of the value, forecast and score rules, per channel they watch ("*":
    every channel in ``channels``). ``in_effect``: the rule now in force under a
    configured rule's name (``AlarmEngine.rule``: the cloud may have overridden levels)."""
    names = list(channels)
    levels = []
    for configured in rules:
        rule = in_effect(configured.name)
        if not isinstance(rule, LevelRule) or rule.type not in LEVEL_TYPES:
            continue
        watched = names if rule.channel == ALL_CHANNELS else [rule.channel]
        for channel in watched:
            levels.append(
                AlarmLevel(
                    rule=rule.name,
                    channel=channel,
                    type=rule.type,
                    set=rule.set,
                    clear=rule.set if rule.clear is None else rule.clear,
                    severity=rule.severity.value,
                )
            )
    return levels


def channel_infos(
    pipeline: Pipeline, now: float, states: Mapping[str, SourceState]
) -> list[ChannelInfo]:
    """Each channel's last value, forecast (with its horizons in time), score and health."""
    channels = []
    for ch in pipeline.channels.values():
        forecast = None
        if ch.has_forecast:
            forecast = Forecast(
                horizons=list(ch.horizons),
                values=ch.forecast.tolist(),
                horizon_s=ch.horizon_s,
                model_period_s=ch.model_period_s,
            )
        health = sorted(c.value for c in pipeline.health(ch, now, states))
        channels.append(
            ChannelInfo(
                name=ch.name,
                unit=ch.config.unit,
                source=ch.source,
                last_ts=ch.last_ts,
                last_value=ch.last_value,
                forecast=forecast,
                anomaly_score=ch.last_score,
                is_warm=ch.scorer.is_warm,
                readings=ch.readings,
                processed=ch.processed,
                rejected={str(k): v for k, v in ch.cleaner.rejected.items() if v},
                window_restarts=ch.window_restarts,
                health=health,
                mean_inference_us=(ch.inference_ns / ch.processed / 1000 if ch.processed else None),
            )
        )
    return channels
