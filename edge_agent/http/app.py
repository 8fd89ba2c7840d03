"""The local HTTP API: health, status, readings, alarms (with acknowledge), metrics, and
the status page at / (edge_agent/http/page.py).

``create_app(view, config)`` builds a FastAPI app around an ``AgentView``; there is no
global app. Endpoints are ``async def`` so they run on the agent's event loop, next to
the pipeline, and read its state without locks.
"""

from __future__ import annotations

import logging
from typing import Annotated, Protocol

from fastapi import FastAPI, HTTPException, Query, Request, Response
from fastapi.responses import PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from pydantic import BaseModel, ConfigDict, Field

from edge_agent import __version__
from edge_agent.errors import AlarmNotFound
from edge_agent.http.body import parse_body, read_body
from edge_agent.http.config import HttpConfig
from edge_agent.http.guard import RequestGuard
from edge_agent.http.page import add_status_page
from edge_agent.http.status import AgentStatus, AlarmInfo, ReadingInfo
from edge_agent.http.summaries import add_summary_routes


class AgentView(Protocol):
    """What the HTTP API needs from the running agent."""

    registry: CollectorRegistry

    def status(self) -> AgentStatus: ...
    def is_ready(self) -> bool: ...
    def readings(
        self, channel: str | None, since: float | None, limit: int
    ) -> list[ReadingInfo]: ...
    def alarms(self, active_only: bool, limit: int) -> list[AlarmInfo]: ...
    def acknowledge(self, alarm_id: int, by: str) -> AlarmInfo: ...


class Health(BaseModel):
    status: str
    version: str


log = logging.getLogger(__name__)


class AckRequest(BaseModel):
    """The body of POST /alarms/{id}/ack: a JSON object, every key optional."""

    model_config = ConfigDict(extra="forbid", strict=True)

    by: Annotated[str, Field(max_length=128)] = ""
    """Who acknowledges (operator name), kept in the alarm history."""
    note: Annotated[str, Field(max_length=500)] = ""
    """Why, for the log."""


def create_app(view: AgentView, config: HttpConfig) -> FastAPI:
    app = FastAPI(
        title="edge-agent",
        version=__version__,
        description="Local status API of an edgetwin device agent.",
    )
    # Host, token and same-origin rules for every route (edge_agent/http/guard.py).
    app.add_middleware(
        RequestGuard,
        names=RequestGuard.names_for(config.host, config.allowed_hosts),
        token=config.token.get_secret_value().encode() if config.token else None,
    )

    @app.get("/health", response_model=Health, summary="Liveness: the process answers")
    async def health() -> Health:
        return Health(status="ok", version=__version__)

    @app.get("/ready", response_model=Health, summary="Readiness: model loaded, pipeline running")
    async def ready(response: Response) -> Health:
        if view.is_ready():
            return Health(status="ready", version=__version__)
        response.status_code = 503
        return Health(status="starting", version=__version__)

    @app.get("/status", response_model=AgentStatus, summary="Model, sources, channels, alarms")
    async def status() -> AgentStatus:
        return view.status()

    @app.get(
        "/readings", response_model=list[ReadingInfo], summary="Recent samples of a channel or all"
    )
    async def readings(
        channel: Annotated[
            str | None, Query(min_length=1, max_length=64, description="default: every channel")
        ] = None,
        since: Annotated[
            float | None, Query(description="UNIX seconds", allow_inf_nan=False)
        ] = None,
        limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
    ) -> list[ReadingInfo]:
        return view.readings(channel, since, limit)

    @app.get("/alarms", response_model=list[AlarmInfo], summary="Alarm list, newest first")
    async def alarms(
        active: Annotated[bool, Query(description="only active or unacknowledged")] = False,
        limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
    ) -> list[AlarmInfo]:
        return view.alarms(active, limit)

    @app.post(
        "/alarms/{alarm_id}/ack",
        response_model=AlarmInfo,
        summary="Acknowledge an alarm",
        description="Body: an AckRequest JSON object (optional). Needs the bearer token"
        " when one is configured; without one, Content-Type: application/json from the"
        " agent's own origin.",
        openapi_extra={
            "requestBody": {
                "required": False,
                "content": {"application/json": {"schema": AckRequest.model_json_schema()}},
            }
        },
    )
    async def acknowledge(alarm_id: int, request: Request) -> AlarmInfo:
        body = parse_body(await read_body(request), AckRequest, empty=AckRequest())
        try:
            info = view.acknowledge(alarm_id, body.by)
        except AlarmNotFound:
            raise HTTPException(status_code=404, detail=f"no alarm with id {alarm_id}") from None
        if body.note:
            log.info("alarm %d acknowledged by %r: %s", alarm_id, body.by, body.note)
        return info

    @app.get("/metrics", response_class=PlainTextResponse, summary="Prometheus metrics")
    async def metrics() -> Response:
        return Response(generate_latest(view.registry), media_type=CONTENT_TYPE_LATEST)

    add_summary_routes(app, view)
    add_status_page(app)
    return app
