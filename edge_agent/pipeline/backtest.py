"""`edge-agent replay`: the live pipeline's own classes over a CSV, as fast as it goes.

Users tune alarm rules on history with it: per processed sample it writes the time,
channel, value, the forecast that was made for it, the latest forecast at the longest
horizon, the anomaly score and the channel's alarm state. Actions are recorded, not
fired (a backtest must not page anyone).

For benchmarks it also writes NAB result files (``timestamp,value,anomaly_score``, one
row per reading of a one-column CSV), and it can take a model update at a given data
time the way a device takes an OTA release once downloaded: the child-process
self-test, verification with the release key, anti-rollback, the same window and
horizons required, the swap between two samples under the live guard (the previous
model in shadow) and the rollback when the guard fails.
"""

from __future__ import annotations

import contextlib
import csv
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from edge_agent.actions.recording import RecordingAction
from edge_agent.alarms.engine import AlarmEngine
from edge_agent.alarms.model import AlarmEvent, AlarmEventKind
from edge_agent.config import AgentConfig, LoadedConfig
from edge_agent.model.bundle import LoadedModel, load_bundle
from edge_agent.model.ota.errors import SelfTestFailed, UpdateRejected
from edge_agent.model.ota.replacement import check_replacement
from edge_agent.model.ota.selftest import run_self_test
from edge_agent.model.selection import load_model
from edge_agent.pipeline.channel import ChannelPipeline, SampleObserver
from edge_agent.pipeline.pipeline import Pipeline
from edge_agent.pipeline.shadow import ShadowGuard, guard_verdict
from edge_agent.reading import Reading
from edge_agent.sources.replay import ReplaySource, ReplaySourceConfig
from edge_agent.store.sqlite import Store
from edgetwin_contracts.errors import BundleRejected
from edgetwin_contracts.signing import load_public_key

HEALTH_EVERY_S = 1.0
"""Channel health is checked on data time, once per second of data."""

NAB_HEADER = ("timestamp", "value", "anomaly_score")

KEEP_RAISED = 20
"""Raised alarms the report keeps as events (the CLI prints them)."""


@dataclass(frozen=True, slots=True)
class ModelUpdate:
    """A release the replayed device takes at data time ``at_ts`` (UNIX s): ``bundle``
    folder, verified with ``public_key`` (the release key, PEM)."""

    at_ts: float
    bundle: Path
    public_key: Path


@dataclass(slots=True)
class BacktestReport:
    readings: int = 0
    samples: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    """Readings rejected by cleaning, by reason."""
    skipped: Counter[str] = field(default_factory=Counter)
    """CSV rows the source could not use, by reason (text, missing value, time going back)."""
    raised: list[AlarmEvent] = field(default_factory=list)
    """The first ``KEEP_RAISED`` alarms raised (all of them are in the results CSV and
    counted in ``raised_total``): a long replay's memory stays flat however many."""
    raised_total: int = 0
    elapsed_s: float = 0.0
    model_update: str | None = None
    """What became of the ModelUpdate (swapped in, kept or rolled back, and why)."""
    model: str = ""
    """The model the replay started with: name, version and bundle folder."""

    @property
    def samples_per_s(self) -> float:
        return self.samples / self.elapsed_s if self.elapsed_s > 0 else 0.0


def run_backtest(
    loaded: LoadedConfig,
    data: Path | None,
    out: Path | None,
    *,
    progress: Callable[[BacktestReport], None] | None = None,
    nab_out: Path | None = None,
    update: ModelUpdate | None = None,
) -> BacktestReport:
    """Replay ``data`` (a CSV as ReplaySourceConfig reads it, with the config's replay
    source settings; None: that source's own path) through the pipeline.

    ``nab_out``: also write a NAB result file (the CSV must have one value column).
    ``update``: take that model release at its data time.

    Raises ReplayInvalid-style source errors for an unreadable CSV, ValueError for
    ``nab_out`` with several value columns, and the model loading errors of
    ``load_model`` (and of ``load_bundle`` for the update).
    """
    config = loaded.config
    model = load_model(config.model)
    m = model.manifest.model
    report = BacktestReport(model=f"{m.name} {m.version} ({model.path})")
    source = ReplaySource(replay_source_config(config, data))
    if nab_out is not None and len(source.channels()) != 1:
        raise ValueError(
            f"a NAB result file needs one value column; {source.config.path} has several"
        )
    feeds = {name: config.channel(name).sample_period_s for name in source.channels()}
    release = _load_update(config, update, model, feeds) if update is not None else None
    with (
        tempfile.TemporaryDirectory(prefix="edge-agent-replay-") as tmp,
        contextlib.ExitStack() as files,
    ):
        store = Store(Path(tmp) / "backtest.db", config.store)
        engine = _alarm_engine(config, model, store, report)
        results = (
            _ResultsCsv(files.enter_context(out.open("w", newline="", encoding="utf-8")))
            if out is not None
            else None
        )
        observer = results.observer(engine, model.forecaster.horizons[-1]) if results else None
        pipeline = Pipeline(
            config,
            model.forecaster,
            engine,
            store,
            observer=observer,
            model_period_s=model.manifest.input.sample_period_s,
        )
        nab = (
            _NabCsv(files.enter_context(nab_out.open("w", newline="", encoding="utf-8")))
            if nab_out is not None
            else None
        )
        swap = _UpdateInProgress(pipeline, model, release, config, report) if release else None
        start = time.perf_counter()
        _replay(source, pipeline, store, report, config.store.flush_max_rows, swap, nab, progress)
        store.close()
        report.elapsed_s = time.perf_counter() - start
    _count_what_was_dropped(report, source, pipeline)
    return report


def replay_source_config(config: AgentConfig, data: Path | None) -> ReplaySourceConfig:
    """How to read the CSV: the config's ``[[sources]] type = "replay"`` settings
    (timestamp column, column -> channel mapping with scale and offset) when it has one,
    read once and as fast as it goes; ``data`` (when given) replaces its path.

    Raises ValueError when there is neither ``data`` nor a replay source to take it from.
    """
    configured = next((s for s in config.sources if isinstance(s, ReplaySourceConfig)), None)
    if configured is None:
        if data is None:
            raise ValueError('no CSV: give --csv, or a [[sources]] type = "replay" path')
        return ReplaySourceConfig(type="replay", name="backtest", path=data, speed=0)
    update: dict[str, object] = {"speed": 0.0, "loop": False}
    if data is not None:
        update["path"] = data
    return configured.model_copy(update=update)


def _alarm_engine(
    config: AgentConfig, model: LoadedModel, store: Store, report: BacktestReport
) -> AlarmEngine:
    """The live engine with every action recorded, not fired; raised alarms are kept in
    the report and every event goes to the (temporary) store as on a device."""

    def on_event(event: AlarmEvent) -> None:
        store.add_alarm_event(event)
        if event.kind is AlarmEventKind.RAISED:
            report.raised_total += 1
            if len(report.raised) < KEEP_RAISED:
                report.raised.append(event)

    # Counted, not kept: a long replay raising thousands of alarms stays in flat memory.
    actions = {name: RecordingAction(name, max_events=0) for name in config.action_names()}
    return AlarmEngine(config.alarms, model.forecaster.horizons, sink=on_event, actions=actions)


class _ResultsCsv:
    """The per-sample results file: time, channel, value, the forecast made for it, the
    latest forecast at the longest horizon, the anomaly score, the channel's alarm state."""

    def __init__(self, handle: IO[str]) -> None:
        self._write = csv.writer(handle).writerow

    def observer(self, engine: AlarmEngine, longest: int) -> SampleObserver:
        """Write the header; return the pipeline observer that writes one row a sample."""
        self._write(
            (
                "timestamp",
                "channel",
                "value",
                "forecast",
                f"forecast_h{longest}",
                "anomaly_score",
                "alarm_state",
            )
        )
        write = self._write
        channel_state = engine.channel_state

        def observe(
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

        return observe


class _NabCsv:
    """A NAB result file: one row per reading of a one-column CSV."""

    def __init__(self, handle: IO[str]) -> None:
        self._write = csv.writer(handle).writerow
        self._write(NAB_HEADER)

    def process(self, pipeline: Pipeline, reading: Reading) -> None:
        """Process ``reading`` and write its row."""
        channel = pipeline.channels.get(reading.channel)
        before = channel.processed if channel is not None else 0
        pipeline.process(reading)
        channel = pipeline.channels[reading.channel]
        # A reading cleaning rejected, or one still warming up, scores 0.
        score = channel.last_score if channel.processed > before else None
        self._write(
            (
                datetime.fromtimestamp(reading.ts, UTC).strftime("%Y-%m-%d %H:%M:%S"),
                repr(reading.value),
                "0" if score is None else repr(score),
            )
        )


def _replay(
    source: ReplaySource,
    pipeline: Pipeline,
    store: Store,
    report: BacktestReport,
    flush_every: int,
    swap: _UpdateInProgress | None,
    nab: _NabCsv | None,
    progress: Callable[[BacktestReport], None] | None,
) -> None:
    """Every reading through the pipeline, health checked on data time, the store
    flushed every ``flush_max_rows`` readings (when ``progress`` hears about it)."""
    next_health: float | None = None
    for reading in source.iter_readings():
        if swap is not None:
            swap.before(reading.ts)
        if nab is None:
            pipeline.process(reading)
        else:
            nab.process(pipeline, reading)
        if swap is not None:
            swap.after()
        report.readings += 1
        if next_health is None or reading.ts >= next_health:
            pipeline.check_health(reading.ts, {})
            next_health = reading.ts + HEALTH_EVERY_S
        if report.readings % flush_every == 0:
            store.flush()
            if progress is not None:
                progress(report)


def _count_what_was_dropped(
    report: BacktestReport, source: ReplaySource, pipeline: Pipeline
) -> None:
    report.samples = sum(ch.processed for ch in pipeline.channels.values())
    for reason, n in source.health.counters.items():
        if n and reason not in ("rows_ok", "loops"):
            report.skipped[reason.removeprefix("rows_")] += n
    for ch in pipeline.channels.values():
        for reason, n in ch.cleaner.rejected.items():
            if n:
                report.rejected[str(reason)] += n


def _load_update(
    config: AgentConfig,
    update: ModelUpdate,
    running: LoadedModel,
    feeds: Mapping[str, float | None],
) -> tuple[ModelUpdate, LoadedModel | str]:
    """The OTA manager's checks before a swap: the child-process self-test, verification
    with the release key, ``check_replacement`` (anti-rollback, same window and horizons,
    a period the channels can feed: ``feeds`` are their configured periods).
    Returns the loaded model or why it was refused."""
    try:
        run_self_test(
            update.bundle, update.public_key, config.model.backend, config.ota.self_test_timeout_s
        )
        loaded = load_bundle(
            update.bundle,
            load_public_key(update.public_key),
            backend=config.model.backend,
            num_threads=config.model.num_threads,
        )
        check_replacement(loaded.manifest, running, is_rollback=False, feeds=feeds)
    except (SelfTestFailed, BundleRejected) as exc:
        return update, f"refused: {exc}"
    except UpdateRejected as exc:
        return update, f"{loaded.manifest.model.version} refused: {exc}"
    return update, loaded


class _UpdateInProgress:
    """The OTA manager's swap, guard and keep-or-roll-back, on data time: the swap falls
    between two readings, the verdict right after the reading that ends the guard."""

    def __init__(
        self,
        pipeline: Pipeline,
        running: LoadedModel,
        release: tuple[ModelUpdate, LoadedModel | str],
        config: AgentConfig,
        report: BacktestReport,
    ) -> None:
        self._pipeline = pipeline
        self._running = running
        self._update, new = release
        self._new = new if isinstance(new, LoadedModel) else running
        self._refused = new if isinstance(new, str) else None
        self._config = config
        self._report = report
        self._is_swapped = False
        self._done: ShadowGuard | None = None

    def before(self, ts: float) -> None:
        if self._is_swapped or ts < self._update.at_ts:
            return
        self._is_swapped = True
        if self._refused is not None:
            self._report.model_update = self._refused
            return
        version = self._new.manifest.model.version
        period = self._new.manifest.input.sample_period_s
        guard = ShadowGuard(
            self._running.forecaster,
            self._config.ota.guard_samples,
            self._guard_done,
            horizons=self._new.forecaster.horizons,
            previous_period_s=self._running.manifest.input.sample_period_s,
            period_s=period,
        )
        self._pipeline.swap(self._new.forecaster, guard, period)
        self._report.model_update = f"{version} swapped in, guarding"

    def _guard_done(self, guard: ShadowGuard) -> None:
        # Called inside a sample's processing: decide once that sample is through.
        self._done = guard

    def after(self) -> None:
        guard = self._done
        if guard is None:
            return
        self._done = None
        version = self._new.manifest.model.version
        reason = guard_verdict(guard, self._config.ota.guard_margin)
        if reason is None:
            self._pipeline.end_guard()
            self._report.model_update = (
                f"{version} kept after {guard.samples} guarded samples "
                f"(MAE by horizon {_maes(guard.mae_by_horizon_new)} vs "
                f"{_maes(guard.mae_by_horizon_old)})"
            )
        else:
            self._pipeline.swap(
                self._running.forecaster, None, self._running.manifest.input.sample_period_s
            )
            self._report.model_update = f"{version} rolled back: {reason}"


def _maes(values: list[float]) -> str:
    return "[" + ", ".join(f"{v:.6g}" for v in values) + "]"
