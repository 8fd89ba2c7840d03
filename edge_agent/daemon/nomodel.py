"""The agent without a model: when the model cannot be loaded at start and
``[agent] on_model_failure = "serve-status"``, the HTTP API and the status page still
run and say why, instead of the process exiting into a restart loop that nobody at the
device can see. Nothing is read from the sources and no alarms are evaluated.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterator

import uvicorn
from prometheus_client import CollectorRegistry

from edge_agent import __version__
from edge_agent.config import LoadedConfig
from edge_agent.errors import AlarmNotFound
from edge_agent.http.advisor import add_advisor_routes
from edge_agent.http.app import create_app
from edge_agent.http.metrics import AgentCollector
from edge_agent.http.status import (
    AgentInfo,
    AgentStatus,
    AlarmInfo,
    ReadingInfo,
    SourceInfo,
    StoreInfo,
)
from edgetwin_common.notify import Notifier, watchdog_period_s

log = logging.getLogger(__name__)


class NoModelAgent:
    """An ``AgentView`` for an agent that could not load its model (``reason``)."""

    def __init__(
        self, loaded: LoadedConfig, reason: str, clock: Callable[[], float] = time.time
    ) -> None:
        self.config = loaded.config
        self.reason = reason
        self._clock = clock
        self.started_at = clock()
        self.http_url: str | None = None
        self.registry = CollectorRegistry()
        self.registry.register(AgentCollector(self.status))
        self._store_path = loaded.resolve(self.config.store.path)

    def is_ready(self) -> bool:
        return False

    def status(self) -> AgentStatus:
        now = self._clock()
        return AgentStatus(
            agent=AgentInfo(
                name=self.config.agent.name,
                version=__version__,
                started_at=self.started_at,
                uptime_s=now - self.started_at,
                is_ready=False,
            ),
            model=None,
            problem=f"no model: {self.reason}. Readings are not processed; "
            "`edge-agent doctor` shows the fix.",
            sources=[
                SourceInfo(
                    name=src.name,
                    type=src.type,
                    state="stopped",
                    since=self.started_at,
                    last_reading_ts=None,
                    last_error="not started: the agent has no model",
                    counters={},
                )
                for src in self.config.sources
            ],
            channels=[],
            alarms=[],
            store=StoreInfo(path=str(self._store_path), details={}),
        )

    def readings(self, channel: str | None, since: float | None, limit: int) -> list[ReadingInfo]:
        return []

    def alarms(self, active_only: bool, limit: int, reasons: bool = True) -> list[AlarmInfo]:
        return []

    def alarm(self, alarm_id: int) -> AlarmInfo:
        raise AlarmNotFound(alarm_id)

    def acknowledge(self, alarm_id: int, by: str) -> AlarmInfo:
        raise AlarmNotFound(alarm_id)

    async def run(self, stop: asyncio.Event, on_ready: Callable[[str], None] | None = None) -> None:
        """Serve the API until ``stop``. Under systemd: READY with the reason in STATUS,
        and watchdog pings (the process does the one thing it can)."""
        http = self.config.http
        app = create_app(self, http)
        add_advisor_routes(app, None, time.time)  # the page asks; no advisor runs here
        server = _QuietServer(
            uvicorn.Config(
                app,
                host=http.host,
                port=http.port,
                log_config=None,
                access_log=False,
                lifespan="off",
            )
        )
        serving = asyncio.create_task(server.serve(), name="http")
        while not server.started:
            if serving.done():
                serving.result()
            await asyncio.sleep(0.01)
        host, port = server.servers[0].sockets[0].getsockname()[:2]
        self.http_url = f"http://{host}:{port}"
        log.error("running without a model (%s); status page at %s", self.reason, self.http_url)
        notifier = Notifier.from_env()
        period = watchdog_period_s()
        if notifier is not None:
            notifier.ready(f"no model: {self.reason}")
        if on_ready is not None:
            on_ready(self.http_url)
        try:
            while not stop.is_set():
                if notifier is not None and period is not None:
                    notifier.watchdog()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), period or 3600.0)
        finally:
            if notifier is not None:
                notifier.stopping()
                notifier.close()
            server.should_exit = True
            await serving


class _QuietServer(uvicorn.Server):
    """uvicorn leaving SIGINT/SIGTERM to the CLI, which sets the stop event."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield
