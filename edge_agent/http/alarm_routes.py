"""The alarm routes of the local API: the list, one alarm with its reason, and the
acknowledgement (docs/agent.md, docs/alarms.md)."""

from __future__ import annotations

import logging
from typing import Annotated, Protocol

from fastapi import FastAPI, HTTPException, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from edge_agent.errors import AlarmNotFound
from edge_agent.http.body import parse_body, read_body
from edge_agent.http.status import AlarmInfo

log = logging.getLogger(__name__)


class AlarmView(Protocol):
    """What the alarm routes need from the running agent."""

    def alarms(self, active_only: bool, limit: int, reasons: bool = True) -> list[AlarmInfo]: ...
    def alarm(self, alarm_id: int) -> AlarmInfo: ...
    def acknowledge(self, alarm_id: int, by: str) -> AlarmInfo: ...


class AckRequest(BaseModel):
    """The body of POST /alarms/{id}/ack: a JSON object, every key optional."""

    model_config = ConfigDict(extra="forbid", strict=True)

    by: Annotated[str, Field(max_length=128)] = ""
    """Who acknowledges (operator name), kept in the alarm history."""
    note: Annotated[str, Field(max_length=500)] = ""
    """Why, for the log."""


def add_alarm_routes(app: FastAPI, view: AlarmView) -> None:
    @app.get("/alarms", response_model=list[AlarmInfo], summary="Alarm list, newest first")
    async def alarms(
        active: Annotated[bool, Query(description="only active or unacknowledged")] = False,
        limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
        reason: Annotated[
            bool, Query(description="with each alarm's reason (false: lighter, for polling)")
        ] = True,
    ) -> list[AlarmInfo]:
        return view.alarms(active, limit, reason)

    @app.get(
        "/alarms/{alarm_id}",
        response_model=AlarmInfo,
        summary="One alarm, with its reason",
        responses={404: {"description": "no alarm with that id"}},
    )
    async def alarm(alarm_id: int) -> AlarmInfo:
        try:
            return view.alarm(alarm_id)
        except AlarmNotFound:
            raise HTTPException(status_code=404, detail=f"no alarm with id {alarm_id}") from None

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
