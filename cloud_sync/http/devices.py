"""The device registry and fleet data: ``GET`` / ``POST /v1/devices`` (admin), a
device's interval summaries, ``GET /v1/devices/{name}/summaries``, and its alarm events
with their reasons, ``GET /v1/devices/{name}/alarm-events``."""

# No `from __future__ import annotations`: FastAPI resolves the Depends() closures.

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel
from sqlalchemy import Engine

from cloud_sync.alarm_reasons import MAX_EVENTS, list_alarm_events
from cloud_sync.config import FleetSection
from cloud_sync.fleet import DeviceOverview, PresenceLookup, overview
from cloud_sync.http.error_model import error_responses
from cloud_sync.http.guards import Guards
from cloud_sync.registry import AdminPrincipal, DeviceName, add_device
from cloud_sync.twin import MAX_LIMIT, list_summaries
from edgetwin_contracts.batch import AlarmEventRecord, SummaryRecord


class NewDevice(BaseModel):
    name: DeviceName


class DeviceToken(BaseModel):
    """A new device's token: shown once, stored only as its hash."""

    name: str
    token: str


def devices_router(
    fleet: FleetSection, engine: Engine, guards: Guards, presence: PresenceLookup | None = None
) -> APIRouter:
    """The registry routes; ``fleet``: how the overview judges health."""
    router = APIRouter(tags=["devices"])

    @router.get(
        "/v1/devices",
        response_model=list[DeviceOverview],
        summary="Fleet overview (admin)",
        responses=error_responses(401, 403, 503),
    )
    def devices(_: Annotated[AdminPrincipal, Depends(guards.admin)]) -> list[DeviceOverview]:
        return overview(engine, fleet, presence=presence)

    @router.post(
        "/v1/devices",
        response_model=DeviceToken,
        status_code=201,
        summary="Register a device (admin); its token is shown only in this answer",
        responses=error_responses(400, 401, 403, 409, 422, 503),
    )
    def new_device(
        body: NewDevice, _: Annotated[AdminPrincipal, Depends(guards.admin)]
    ) -> DeviceToken:
        return DeviceToken(name=body.name, token=add_device(engine, body.name))

    @router.get(
        "/v1/devices/{name}/summaries",
        response_model=list[SummaryRecord],
        summary="A device's interval summaries (admin, or that device)",
        description="Ascending by start. With `since`: the first `limit` with start > since; "
        "without: the newest `limit`.",
        responses=error_responses(401, 403, 404, 422, 503),
    )
    def summaries(
        name: Annotated[str, Depends(guards.reader)],
        channel: Annotated[
            str | None, Query(min_length=1, max_length=64, pattern=r"^[^\x00]+$")
        ] = None,
        since: Annotated[
            float | None, Query(description="UNIX seconds", allow_inf_nan=False)
        ] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 1000,
    ) -> list[SummaryRecord]:
        return list_summaries(engine, name, channel, since, limit)

    @router.get(
        "/v1/devices/{name}/alarm-events",
        response_model=list[AlarmEventRecord],
        summary="A device's alarm events, newest first, each alarm with its reason "
        "(admin, or that device)",
        description="Each event's `alarm.reason`: the rule, what tripped it (value or "
        "forecast and the limit), the score's parts, the top channel and the window "
        "before the alarm with the forecast made then; null for alarms from devices "
        "before reasons. With `alarm_id`: that alarm's events only.",
        responses=error_responses(401, 403, 404, 422, 503),
    )
    def alarm_events(
        name: Annotated[str, Depends(guards.reader)],
        alarm_id: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_EVENTS)] = 100,
    ) -> list[AlarmEventRecord]:
        return list_alarm_events(engine, name, alarm_id, limit)

    return router
