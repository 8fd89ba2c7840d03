"""The running agent: sources → pipeline → alarms → store, with the HTTP API beside it.

One asyncio event loop carries everything that is not a blocking read: each source's
stream is consumed by its own task, a ticker checks channel health and flushes the
store, uvicorn serves the API, and alarm actions run their own workers. The per-sample
work (clean, window, int8 inference, rules) takes tens of microseconds and runs inline.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import uvicorn
from prometheus_client import CollectorRegistry

from edge_agent import __version__
from edge_agent.actions.base import Action, AgentFeed, snapshots
from edge_agent.actions.modbus_setpoint import link_buses
from edge_agent.actions.registry import build_action
from edge_agent.alarms.engine import AlarmEngine
from edge_agent.alarms.model import AlarmEvent
from edge_agent.config import LoadedConfig
from edge_agent.daemon.alarm_views import alarm_by_id, alarm_info, alarm_list, reported_alarm
from edge_agent.daemon.devicetime import DeviceTime
from edge_agent.daemon.watchdog import ProgressMonitor, feed_watchdog
from edge_agent.http.advisor import add_advisor_routes
from edge_agent.http.app import create_app
from edge_agent.http.metrics import AgentCollector
from edge_agent.http.status import (
    AgentInfo,
    AgentStatus,
    AlarmInfo,
    ModelInfo,
    ReadingInfo,
    StoreInfo,
    SyncInfo,
)
from edge_agent.http.status_parts import (
    action_health,
    alarm_levels,
    channel_infos,
    source_infos,
)
from edge_agent.model.bundle import LoadedModel
from edge_agent.model.ota.download import Downloader
from edge_agent.model.ota.layout import ModelsDir
from edge_agent.model.ota.manager import OtaManager
from edge_agent.model.selection import load_model, release_key_path
from edge_agent.pipeline.pipeline import Pipeline
from edge_agent.sources.base import Source, SourceState
from edge_agent.sources.registry import build_source
from edge_agent.sources.replay import ReplaySource
from edge_agent.store.errors import StoreUnavailable
from edge_agent.store.sqlite import Store
from edge_agent.sync.start import start_sync
from edge_agent.sync.twin import DeviceReport, config_hash
from edge_agent.twin.advisor.service import advisor_service
from edge_agent.twin.cross.service import cross_channel
from edge_agent.twin.ota.start import start_twin, twin_updates
from edgetwin_common.notify import Notifier, watchdog_period_s
from edgetwin_contracts.batch import ModelReport
from edgetwin_contracts.signing import load_public_key

log = logging.getLogger(__name__)

TICK_S = 0.5
LIMITS_EVERY_S = 60.0
MAX_SOURCE_RESTARTS = 10


class Agent:
    """Builds every part from a validated config; ``run`` drives them until ``stop``.

    Raises at construction (nothing started yet): BundleRejected / KeyInvalid /
    BackendUnavailable for the model, OSError / sqlite3.Error for the store.
    """

    def __init__(
        self,
        loaded: LoadedConfig,
        *,
        sources: list[Source] | None = None,
        clock: Callable[[], float] = time.time,
        on_ota_step: Callable[[str], None] | None = None,
    ) -> None:
        self.config = loaded.config
        self._loaded = loaded
        self._clock = clock
        self.started_at = clock()
        self.models_dir = ModelsDir(loaded.resolve(self.config.ota.models_dir))
        release_key = release_key_path(self.config)
        self.model: LoadedModel = load_model(self.config.model, self.models_dir, release_key)
        store_path = loaded.resolve(self.config.store.path)
        self.store = Store(store_path, self.config.store)
        self.alarm_listeners: list[Callable[[AlarmEvent], None]] = []
        """Called with every alarm event after it is stored (demo, tests, later the twin)."""
        self.actions: dict[str, Action] = {
            name: build_action(cfg) for name, cfg in self.config.actions_by_name().items()
        }
        self.engine = AlarmEngine(
            self.config.alarms,
            self.model.forecaster.horizons,
            sink=self._on_alarm_event,
            actions=self.actions,
            next_id=self.store.max_alarm_id() + 1,
            restored=self.store.open_alarms(),
        )
        self.sources = (
            sources if sources is not None else [build_source(cfg) for cfg in self.config.sources]
        )
        link_buses(self.actions, self.sources)  # a modbus_setpoint on a source's bus
        self.whatif = start_twin(loaded, self.store, clock, release_key)
        """The cross-channel twin's what-if answers, when the config has [twin]."""
        self.advisor = advisor_service(self.config.advisor, self.actions, self.engine, self.whatif)
        """The advisor, when the config has [advisor] (docs/advisor.md)."""
        self.cross = cross_channel(self.config, self.whatif, self.engine)
        channel_sources = {ch: src.name for src in self.sources for ch in src.channels()}
        self.pipeline = Pipeline(
            self.config,
            self.model.forecaster,
            self.engine,
            self.store,
            channel_sources,
            model_period_s=self.model.manifest.input.sample_period_s,
        )
        self.ota: OtaManager | None = None
        """Installs the model the cloud asks for, when [sync] and [ota] are on (docs/ota.md)."""
        if self.config.sync.enabled and self.config.ota.enabled:
            self.ota = self._build_ota(release_key, on_ota_step)
            self.ota.recover()
        # The twin's guard counts periods of the readings' time (a fast-forward too), not ours.
        self._device_time = dt = DeviceTime(clock, self.pipeline.accepted_stamps)
        self.twin_ota = twin_updates(
            loaded, self.whatif, self.engine, channel_sources, release_key, dt.now, on_ota_step
        )
        self._config_hash = config_hash(loaded.path) if self.config.sync.enabled else ""
        self.twin, self.sync = start_sync(
            self.config.sync,
            self.store,
            self.engine,
            self.model.manifest.model.version,
            self._device_report,
            ota=self.ota,
            twins=self.twin_ota,
            clock=clock,
        )
        """The device shadow and the cloud sync worker, when [sync] is enabled (docs/sync.md)."""
        self.http_url: str | None = None
        self._ready = False
        self._alarm_flush_pending = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self.samples = 0
        """Readings taken from all sources (the watchdog's progress counter)."""
        self.registry = CollectorRegistry()
        self.registry.register(AgentCollector(self.status))

    def _build_ota(self, release_key: Path, on_step: Callable[[str], None] | None) -> OtaManager:
        sync = self.config.sync
        token = sync.token.get_secret_value() if sync.token else ""
        return OtaManager(
            self.config.ota,
            self.models_dir,
            running=self.model,
            pipeline=self.pipeline,
            engine=self.engine,
            key=load_public_key(release_key),
            key_file=release_key,
            downloader=Downloader(sync.url, token, sync.timeout_s),
            backend=self.config.model.backend,
            num_threads=self.config.model.num_threads,
            clock=self._clock,
            on_model=self._model_changed,
            on_step=on_step,
        )

    # -- the loop ------------------------------------------------------------------

    async def run(
        self, stop: asyncio.Event, on_ready: Callable[[Agent], None] | None = None
    ) -> None:
        """Run until ``stop`` is set; then stop sources, drain actions, flush and close."""
        self._loop = asyncio.get_running_loop()
        await self._start_actions()
        tasks = [
            asyncio.create_task(self._consume(src), name=f"source:{src.name}")
            for src in self.sources
        ]
        tasks.append(asyncio.create_task(self._ticker(stop), name="ticker"))
        if self.sync is not None:
            tasks.append(asyncio.create_task(self.sync.run(stop), name="sync"))
        if self.ota is not None:
            tasks.append(asyncio.create_task(self.ota.run(stop), name="ota"))
        if self.twin_ota is not None:
            tasks.append(asyncio.create_task(self.twin_ota.run(stop), name="twin-ota"))
        server: uvicorn.Server | None = None
        if self.config.http.enabled:
            server = await self._start_http()
        self._ready = True
        log.info(
            "agent started",
            extra={"model": self.model.manifest.model.version, "http": self.http_url},
        )
        # Under systemd (Type=notify): READY once everything above is up, then watchdog
        # pings from this loop only while readings flow (edge_agent/daemon/watchdog.py).
        notifier = Notifier.from_env()
        if notifier is not None:
            notifier.ready(
                f"model {self.model.manifest.model.version}, "
                f"{len(self.sources)} source(s), http {self.http_url or 'off'}"
            )
            period = watchdog_period_s()
            if period is not None:
                monitor = ProgressMonitor(self.config.agent.stall_after_s)
                tasks.append(
                    asyncio.create_task(
                        feed_watchdog(
                            notifier,
                            period,
                            monitor,
                            lambda: self.samples,
                            lambda: list(self._source_states().values()),
                            stop,
                        ),
                        name="watchdog",
                    )
                )
        if on_ready is not None:
            on_ready(self)
        try:
            await stop.wait()
        finally:
            self._ready = False
            if notifier is not None:
                notifier.stopping()
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            if server is not None:
                server.should_exit = True
                await self._server_task
            for action in self.actions.values():
                await action.stop()
            self.store.close()
            if notifier is not None:
                notifier.close()
            log.info("agent stopped")

    async def _start_actions(self) -> None:
        open_alarms = self.engine.open_alarms()
        for name, action in self.actions.items():
            rules = {rule.name for rule in self.config.alarms if name in rule.actions}
            restore = getattr(action, "restore", None)
            if restore is not None:
                # An output that shows state (a lamp, a relay) must show the alarms still
                # open from before a restart: the engine raises no new event for them.
                restore([alarm for alarm in open_alarms if alarm.rule in rules])
            attach = getattr(action, "attach", None)
            if attach is not None:  # an output that also publishes the channels (mqtt)
                channels = functools.partial(snapshots, self.pipeline.channels.values())
                attach(AgentFeed(self.config.agent.name, channels, rules))
            await action.start()

    async def _start_http(self) -> uvicorn.Server:
        http = self.config.http
        app = create_app(self, http, self.whatif)
        add_advisor_routes(app, self.advisor, self._clock)
        config = uvicorn.Config(
            app, host=http.host, port=http.port, log_config=None, access_log=False, lifespan="off"
        )
        server = _EmbeddedServer(config)
        self._server_task = asyncio.create_task(server.serve(), name="http")
        while not server.started:
            if self._server_task.done():
                self._server_task.result()  # raises the bind error
            await asyncio.sleep(0.01)
        host, port = server.servers[0].sockets[0].getsockname()[:2]
        self.http_url = f"http://{host}:{port}"
        return server

    async def _consume(self, source: Source) -> None:
        """Feed one source into the pipeline. A source's stream handles its own device
        errors; if the stream itself fails (a bug), it is restarted a bounded number of
        times with a pause, then left down (reported in /status)."""
        restarts = 0
        process = self.pipeline.process
        advise = self.advisor.on_reading if self.advisor is not None else None
        while True:
            try:
                async for reading in source.stream():
                    process(reading)
                    if advise is not None:
                        advise(reading)
                    self.samples += 1
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                restarts += 1
                source.health.set_state(
                    SourceState.DISCONNECTED, self._clock(), f"stream failed: {exc!r}"
                )
                log.exception("source %s stream failed (restart %d)", source.name, restarts)
                if restarts > MAX_SOURCE_RESTARTS:
                    return
                await asyncio.sleep(min(30.0, 0.5 * 2**restarts))

    async def _ticker(self, stop: asyncio.Event) -> None:
        """Health checks, summary intervals and store writes, every TICK_S.

        A failing store (a full or vanished card) is reported and retried at the next
        tick; the buffered rows stay in memory meanwhile (bounded by the store)."""
        next_limits = self._clock() + LIMITS_EVERY_S
        flush_every = self.store.config.flush_interval_s
        next_flush = time.monotonic() + flush_every
        store_ok = True
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), TICK_S)
            now = self._clock()
            self.pipeline.check_health(self._device_time.now(), self._source_states())
            if self.advisor is not None:
                self.advisor.on_sources(self._source_states(), now)
            self.store.close_open(self._data_time(now))
            self.cross.on_tick(now)
            # One transaction per flush_interval_s (or once flush_max_rows are buffered):
            # each commit rewrites whole pages of the table, its index and the WAL, so
            # on an SD card the write rate is set by how often we commit, not by how
            # much (docs/store.md#write-rate). Monotonic: a clock step must not stall it.
            if not self.store.is_flush_due and time.monotonic() < next_flush:
                continue
            next_flush = time.monotonic() + flush_every
            try:
                # Off the loop: a slow SD-card sync must not stall the pipeline.
                await asyncio.to_thread(self.store.flush)
                if now >= next_limits:
                    await asyncio.to_thread(self.store.enforce_limits)
                    next_limits = now + LIMITS_EVERY_S
            except StoreUnavailable as exc:
                if store_ok:
                    log.error("store unavailable, keeping rows in memory: %s", exc)
                store_ok = False
                continue
            if not store_ok:
                log.info("store available again")
                store_ok = True

    def _data_time(self, now: float) -> float:
        """The clock summaries close on: wall time, except when every source replays
        recorded data, whose own timestamps are the time that matters."""
        if self.sources and all(isinstance(s, ReplaySource) for s in self.sources):
            stamps = [s.health.last_reading_ts for s in self.sources]
            known = [t for t in stamps if t is not None]
            return max(known) if known else now
        return now

    def _source_states(self) -> dict[str, SourceState]:
        return {src.name: src.health.state for src in self.sources}

    def _model_changed(self, model: LoadedModel) -> None:
        """The OTA manager swapped a model in (or back): status and twin report it."""
        self.model = model

    def _on_alarm_event(self, event: AlarmEvent) -> None:
        self.store.add_alarm_event(event)
        for listener in self.alarm_listeners:
            listener(event)
        # Alarms are written promptly, once per burst, and off the loop: the store syncs
        # them to the card before returning, which must not delay the next sample.
        if self._loop is not None and not self._alarm_flush_pending:
            self._alarm_flush_pending = True
            self._loop.run_in_executor(None, self._flush_alarms)

    def _flush_alarms(self) -> None:
        self._alarm_flush_pending = False
        try:
            self.store.flush()
        except StoreUnavailable as exc:
            # The events stay buffered; the ticker retries and reports.
            log.error("could not write alarm events yet: %s", exc)

    # -- the view the HTTP API and metrics read -----------------------------------

    def is_ready(self) -> bool:
        return self._ready

    def status(self) -> AgentStatus:
        now = self._clock()
        m = self.model.manifest
        channels = channel_infos(self.pipeline, now, self._source_states())
        stats = self.store.stats()
        return AgentStatus(
            agent=AgentInfo(
                name=self.config.agent.name,
                version=__version__,
                started_at=self.started_at,
                uptime_s=now - self.started_at,
                is_ready=self._ready,
            ),
            model=ModelInfo(
                name=m.model.name,
                version=m.model.version,
                sha256=m.file.sha256,
                backend=str(self.model.backend),
                path=str(self.model.path),
                window_length=m.input.window_length,
                horizons=list(m.output.horizons),
            ),
            sources=source_infos(self.sources),
            channels=channels,
            alarms=[alarm_info(a) for a in self.engine.active()],
            store=StoreInfo(path=str(self.store.path), details=stats.to_dict()),
            sync=(
                self.sync.status()
                if self.sync is not None
                else SyncInfo(backlog=dict(stats.outbox_rows))
            ),
            actions=action_health(self.actions),
            alarm_levels=alarm_levels(self.config.alarms, self.engine.rule, self.pipeline.channels),
        )

    def _device_report(self) -> DeviceReport:
        """What the twin's reported state says about this device (docs/sync.md). Reads
        only memory: it runs on the event loop."""
        now = self._clock()
        m = self.model.manifest
        states = self._source_states()
        return DeviceReport(
            agent_version=__version__,
            model=ModelReport(name=m.model.name, version=m.model.version, sha256=m.file.sha256),
            config_hash=self._config_hash,
            sources={
                src.name: {
                    "type": type(src).__name__,
                    "state": src.health.state.value,
                    "since": src.health.since,
                    "last_reading_ts": src.health.last_reading_ts,
                    "last_error": src.health.last_error,
                    "counters": dict(src.health.counters),
                }
                for src in self.sources
            },
            channels={
                ch.name: {
                    "health": sorted(c.value for c in self.pipeline.health(ch, now, states)),
                    "last_ts": ch.last_ts,
                    "last_value": ch.last_value,
                    "is_warm": ch.scorer.is_warm,
                    "rejected": {str(k): v for k, v in ch.cleaner.rejected.items() if v},
                    "feed_period_s": ch.feed_period_s,
                    "model_period_s": ch.model_period_s,
                    "horizon_s": ch.horizon_s,
                }
                for ch in self.pipeline.channels.values()
            },
            open_alarms=[reported_alarm(a) for a in self.engine.open_alarms()],
            counters={f"alarms_{k}": v for k, v in self.engine.counters.items()},
        )

    def readings(self, channel: str | None, since: float | None, limit: int) -> list[ReadingInfo]:
        self.store.flush()
        return [
            ReadingInfo(
                ts=r.ts,
                channel=r.channel,
                value=r.value,
                forecast=r.forecast,
                anomaly_score=r.score,
            )
            for r in self.store.readings(channel, since, limit)
        ]

    def alarms(self, active_only: bool, limit: int, reasons: bool = True) -> list[AlarmInfo]:
        return alarm_list(self.engine, self.store, active_only, limit, reasons)

    def alarm(self, alarm_id: int) -> AlarmInfo:
        return alarm_by_id(self.engine, self.store, alarm_id)

    def acknowledge(self, alarm_id: int, by: str) -> AlarmInfo:
        alarm = self.engine.acknowledge(alarm_id, self._clock(), by)
        return alarm_info(alarm)


class _EmbeddedServer(uvicorn.Server):
    """uvicorn that leaves SIGINT/SIGTERM alone: the agent's owner (the CLI) holds them
    and sets the stop event, so shutdown flushes the store instead of re-raising."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield
