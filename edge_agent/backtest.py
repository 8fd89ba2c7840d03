"""`edge-agent replay`: the live pipeline's own classes over a CSV, as fast as it goes.

Users tune alarm rules on history with it: per processed sample it writes the time,
channel, value, the forecast that was made for it, the latest forecast at the longest
horizon, the anomaly score and the channel's alarm state. Actions are recorded, not
fired (a backtest must not page anyone).
"""

from __future__ import annotations

import csv
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from edge_agent.actions.recording import RecordingAction
from edge_agent.alarms.engine import AlarmEngine
from edge_agent.alarms.model import AlarmEvent, AlarmEventKind
from edge_agent.config import LoadedConfig
from edge_agent.modelref import load_model
from edge_agent.pipeline.channel import ChannelPipeline
from edge_agent.pipeline.pipeline import Pipeline
from edge_agent.sources.replay import ReplaySource, ReplaySourceConfig
from edge_agent.store.sqlite import Store

HEALTH_EVERY_S = 1.0
"""Channel health is checked on data time, once per second of data."""


@dataclass(slots=True)
class BacktestReport:
    readings: int = 0
    samples: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    """Readings rejected by cleaning, by reason."""
    skipped: Counter[str] = field(default_factory=Counter)
    """CSV rows the source could not use, by reason (text, missing value, time going back)."""
    raised: list[AlarmEvent] = field(default_factory=list)
    elapsed_s: float = 0.0

    @property
    def samples_per_s(self) -> float:
        return self.samples / self.elapsed_s if self.elapsed_s > 0 else 0.0


def run_backtest(
    loaded: LoadedConfig,
    data: Path,
    out: Path | None,
    *,
    progress: Callable[[BacktestReport], None] | None = None,
) -> BacktestReport:
    """Replay ``data`` (a CSV as ReplaySourceConfig reads it) through the pipeline.

    Raises ReplayInvalid-style source errors for an unreadable CSV, and the model
    loading errors of ``load_model``.
    """
    config = loaded.config
    model = load_model(config.model)
    report = BacktestReport()
    source = ReplaySource(ReplaySourceConfig(type="replay", name="backtest", path=data, speed=0))
    with tempfile.TemporaryDirectory(prefix="edge-agent-replay-") as tmp:
        store = Store(Path(tmp) / "backtest.db", config.store)

        def on_event(event: AlarmEvent) -> None:
            store.add_alarm_event(event)
            if event.kind is AlarmEventKind.RAISED:
                report.raised.append(event)

        actions = {name: RecordingAction(name) for name in config.action_names()}
        engine = AlarmEngine(
            config.alarms, model.forecaster.horizons, sink=on_event, actions=actions
        )
        handle = out.open("w", newline="", encoding="utf-8") if out is not None else None
        try:
            observer = None
            if handle is not None:
                writer = csv.writer(handle)
                longest = model.forecaster.horizons[-1]
                writer.writerow(
                    [
                        "timestamp",
                        "channel",
                        "value",
                        "forecast",
                        f"forecast_h{longest}",
                        "anomaly_score",
                        "alarm_state",
                    ]
                )
                write = writer.writerow
                channel_state = engine.channel_state

                def observer(
                    channel: str,
                    ts: float,
                    value: float,
                    forecast: float | None,
                    score: float | None,
                    pipe: ChannelPipeline,
                ) -> None:
                    write(
                        (
                            datetime.fromtimestamp(ts, UTC).isoformat(),
                            channel,
                            repr(value),
                            "" if forecast is None else f"{forecast:.6g}",
                            f"{pipe.forecast[-1]:.6g}" if pipe.has_forecast else "",
                            "" if score is None else f"{score:.4g}",
                            channel_state(channel),
                        )
                    )

            pipeline = Pipeline(config, model.forecaster, engine, store, observer=observer)
            flush_every = config.store.flush_max_rows
            start = time.perf_counter()
            next_health: float | None = None
            for reading in source.iter_readings():
                pipeline.process(reading)
                report.readings += 1
                if next_health is None or reading.ts >= next_health:
                    pipeline.check_health(reading.ts, {})
                    next_health = reading.ts + HEALTH_EVERY_S
                if report.readings % flush_every == 0:
                    store.flush()
                    if progress is not None:
                        progress(report)
            store.close()
            report.elapsed_s = time.perf_counter() - start
        finally:
            if handle is not None:
                handle.close()
    report.samples = sum(ch.processed for ch in pipeline.channels.values())
    for reason, n in source.health.counters.items():
        if n and reason not in ("rows_ok", "loops"):
            report.skipped[reason.removeprefix("rows_")] += n
    for ch in pipeline.channels.values():
        for reason, n in ch.cleaner.rejected.items():
            if n:
                report.rejected[str(reason)] += n
    return report
