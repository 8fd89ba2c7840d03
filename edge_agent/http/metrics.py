"""Prometheus metrics, collected from the agent's status at scrape time.

A custom collector rather than counters bumped in the pipeline: the per-sample path
stays free of metric bookkeeping, and /metrics always agrees with /status.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from edge_agent.http.status import AgentStatus, SyncInfo


class AgentCollector(Collector):
    """Every metric family from one ``AgentStatus`` read at scrape time."""

    def __init__(self, status: Callable[[], AgentStatus]) -> None:
        self._status = status

    def collect(self) -> Iterator[Metric]:
        s = self._status()
        yield from _agent(s)
        yield from _sources(s)
        yield from _channels(s)
        if s.sync.enabled:
            yield from _sync(s.sync)
        yield from _alarms(s)
        yield from _actions(s)


def _agent(s: AgentStatus) -> Iterator[Metric]:
    up = GaugeMetricFamily("edge_agent_uptime_seconds", "Seconds since the agent started")
    up.add_metric([], s.agent.uptime_s)
    yield up
    model = GaugeMetricFamily(
        "edge_agent_model_info", "The model in use", labels=["name", "version", "backend"]
    )
    if s.model is not None:
        model.add_metric([s.model.name, s.model.version, s.model.backend], 1)
    yield model


def _sources(s: AgentStatus) -> Iterator[Metric]:
    connected = GaugeMetricFamily(
        "edge_source_connected", "1 while the source is connected", labels=["source"]
    )
    events = CounterMetricFamily(
        "edge_source_events",
        "Source counters (lines, errors, reconnects)",
        labels=["source", "event"],
    )
    for src in s.sources:
        connected.add_metric([src.name], 1.0 if src.state == "connected" else 0.0)
        for event, n in src.counters.items():
            events.add_metric([src.name, event], n)
    yield connected
    yield events


def _channels(s: AgentStatus) -> Iterator[Metric]:
    readings = CounterMetricFamily("edge_readings", "Readings received", labels=["channel"])
    processed = CounterMetricFamily(
        "edge_samples_processed", "Samples through the model", labels=["channel"]
    )
    rejected = CounterMetricFamily(
        "edge_readings_rejected", "Readings rejected by cleaning", labels=["channel", "reason"]
    )
    value = GaugeMetricFamily("edge_value", "Last value (channel units)", labels=["channel"])
    score = GaugeMetricFamily("edge_anomaly_score", "Last anomaly score", labels=["channel"])
    forecast = GaugeMetricFamily(
        "edge_forecast", "Latest forecast (channel units)", labels=["channel", "horizon"]
    )
    unhealthy = GaugeMetricFamily(
        "edge_channel_health", "1 while the condition holds", labels=["channel", "condition"]
    )
    for ch in s.channels:
        readings.add_metric([ch.name], ch.readings)
        processed.add_metric([ch.name], ch.processed)
        for reason, n in ch.rejected.items():
            rejected.add_metric([ch.name, reason], n)
        if ch.last_value is not None:
            value.add_metric([ch.name], ch.last_value)
        if ch.anomaly_score is not None:
            score.add_metric([ch.name], ch.anomaly_score)
        if ch.forecast is not None:
            for h, v in zip(ch.forecast.horizons, ch.forecast.values, strict=True):
                forecast.add_metric([ch.name, str(h)], v)
        for condition in ("stale", "stuck", "disconnected"):
            unhealthy.add_metric([ch.name, condition], 1.0 if condition in ch.health else 0.0)
    yield from (readings, processed, rejected, value, score, forecast, unhealthy)


def _sync(sync: SyncInfo) -> Iterator[Metric]:
    up_to_date = GaugeMetricFamily(
        "edge_sync_last_success_timestamp_seconds", "Last batch the cloud acknowledged"
    )
    if sync.last_success_ts is not None:
        up_to_date.add_metric([], sync.last_success_ts)
    yield up_to_date
    backlog = GaugeMetricFamily(
        "edge_sync_backlog", "Outbox rows awaiting acknowledgement", labels=["kind"]
    )
    for kind, n in sync.backlog.items():
        backlog.add_metric([kind], n)
    yield backlog
    batches = CounterMetricFamily(
        "edge_sync_batches", "Batches by outcome since start", labels=["outcome"]
    )
    batches.add_metric(["acknowledged"], sync.batches_sent)
    batches.add_metric(["duplicate"], sync.duplicates)
    batches.add_metric(["rejected"], sync.rejected)
    yield batches
    failures = GaugeMetricFamily(
        "edge_sync_consecutive_failures", "Failed attempts since the last success"
    )
    failures.add_metric([], sync.consecutive_failures)
    yield failures


def _alarms(s: AgentStatus) -> Iterator[Metric]:
    alarms = GaugeMetricFamily("edge_alarms_active", "Active alarms", labels=["severity", "state"])
    counts: dict[tuple[str, str], int] = {}
    for alarm in s.alarms:
        key = (alarm.severity, alarm.state)
        counts[key] = counts.get(key, 0) + 1
    for (severity, state), n in counts.items():
        alarms.add_metric([severity, state], n)
    yield alarms


def _actions(s: AgentStatus) -> Iterator[Metric]:
    """Per-action health: alert on edge_action_failing == 1 (the control room is not
    getting alarms) and on a rising edge_action_dropped_total."""
    labels = ["action", "type"]
    failing = GaugeMetricFamily(
        "edge_action_failing", "1 while the action's last delivery failed", labels=labels
    )
    success = GaugeMetricFamily(
        "edge_action_last_success_timestamp_seconds", "Last delivery that worked", labels=labels
    )
    error = GaugeMetricFamily(
        "edge_action_last_error_timestamp_seconds", "Last delivery that failed", labels=labels
    )
    depth = GaugeMetricFamily(
        "edge_action_queue_depth", "Events queued or being delivered", labels=labels
    )
    dropped = CounterMetricFamily(
        "edge_action_dropped", "Events dropped (queue full, shutdown)", labels=labels
    )
    failed = CounterMetricFamily(
        "edge_action_failed", "Events given up on after their retries", labels=labels
    )
    for action in s.actions:
        key = [action.name, action.type]
        failing.add_metric(key, 1.0 if action.is_failing else 0.0)
        if action.last_success is not None:
            success.add_metric(key, action.last_success)
        if action.last_error_at is not None:
            error.add_metric(key, action.last_error_at)
        depth.add_metric(key, action.queue_depth)
        dropped.add_metric(key, action.dropped)
        failed.add_metric(key, action.failed)
    yield from (failing, success, error, depth, dropped, failed)
