"""The local HTTP API: health, status, readings, alarms (with acknowledge), metrics, and
the status page at / (edge_agent/http/page.py).

``create_app(view, config)`` builds a FastAPI app around an ``AgentView``; there is no
global app. Endpoints are ``async def`` so they run on the agent's event loop, next to
the pipeline, and read its state without locks.
"""

from __future__ import annotations

import hmac
from typing import Annotated, Protocol

from fastapi import Depends, FastAPI, HTTPException, Query, Request, Response
from fastapi.responses import PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from pydantic import BaseModel, Field

from edge_agent import __version__
from edge_agent.errors import AlarmNotFound
from edge_agent.http.config import HttpConfig
from edge_agent.http.page import add_status_page
from edge_agent.http.status import AgentStatus, AlarmInfo, ReadingInfo


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


class AckRequest(BaseModel):
    by: Annotated[str, Field(max_length=128)] = ""
    """Who acknowledges (operator name), kept in the alarm history."""


def create_app(view: AgentView, config: HttpConfig) -> FastAPI:
    app = FastAPI(
        title="edge-agent",
        version=__version__,
        description="Local status API of an edgetwin device agent.",
    )
    token = config.token.get_secret_value().encode() if config.token else None

    def require_token(request: Request) -> None:
        if token is None:
            return
        header = request.headers.get("authorization", "")
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.encode(), token):
            raise HTTPException(
                status_code=401,
                detail="missing or wrong bearer token (Authorization: Bearer <token>)",
                headers={"WWW-Authenticate": "Bearer"},
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
        since: Annotated[float | None, Query(description="UNIX seconds")] = None,
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
        dependencies=[Depends(require_token)],
    )
    async def acknowledge(alarm_id: int, body: AckRequest | None = None) -> AlarmInfo:
        try:
            return view.acknowledge(alarm_id, (body or AckRequest()).by)
        except AlarmNotFound:
            raise HTTPException(status_code=404, detail=f"no alarm with id {alarm_id}") from None

    @app.get("/metrics", response_class=PlainTextResponse, summary="Prometheus metrics")
    async def metrics() -> Response:
        return Response(generate_latest(view.registry), media_type=CONTENT_TYPE_LATEST)

    add_status_page(app)
    return app
