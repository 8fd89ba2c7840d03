"""The device registry and fleet data: ``GET`` / ``POST /v1/devices`` (admin) and a
device's interval summaries, ``GET /v1/devices/{name}/summaries``."""

# No `from __future__ import annotations`: FastAPI resolves the Depends() closures.

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel
from sqlalchemy import Engine

from cloud_sync.config import FleetSection
from cloud_sync.fleet import DeviceOverview, PresenceLookup, overview
from cloud_sync.http.error_model import error_responses
from cloud_sync.http.guards import Guards
from cloud_sync.registry import AdminPrincipal, DeviceName, add_device
from cloud_sync.twin import MAX_LIMIT, list_summaries
from edgetwin_contracts.batch import SummaryRecord


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

    return router
