"""Twins: ``GET /v1/twin`` (a device's own), ``GET /v1/devices/{name}/twin``, and the
desired state, ``GET`` / ``PATCH /v1/devices/{name}/desired`` (optimistic concurrency:
If-Match carries the version the change is based on)."""

# No `from __future__ import annotations`: FastAPI resolves the Depends() closures.

import re
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Response
from sqlalchemy import Engine

from cloud_sync.errors import BodyMalformed, PreconditionRequired
from cloud_sync.http.error_model import error_responses
from cloud_sync.http.guards import DeviceNamePath, Guards
from cloud_sync.registry import AdminPrincipal, DevicePrincipal
from cloud_sync.twin import DesiredPatch, Twin, get_desired, get_twin, patch_desired
from edgetwin_contracts.batch import DesiredState


def twins_router(engine: Engine, guards: Guards) -> APIRouter:
    """The twin routes."""
    router = APIRouter(tags=["twins"])

    @router.get(
        "/v1/twin",
        response_model=Twin,
        summary="The calling device's own twin",
        responses=error_responses(401, 403, 503),
    )
    def own_twin(who: Annotated[DevicePrincipal, Depends(guards.device)]) -> Twin:
        return get_twin(engine, who.name)

    @router.get(
        "/v1/devices/{name}/twin",
        response_model=Twin,
        summary="A device's twin (admin, or that device)",
        responses=error_responses(401, 403, 404, 422, 503),
    )
    def device_twin(name: Annotated[str, Depends(guards.reader)]) -> Twin:
        return get_twin(engine, name)

    @router.get(
        "/v1/devices/{name}/desired",
        response_model=DesiredState,
        summary="A device's desired state, with its version as ETag (admin, or that device)",
        responses=error_responses(401, 403, 404, 422, 503),
    )
    def device_desired(
        name: Annotated[str, Depends(guards.reader)], response: Response
    ) -> DesiredState:
        desired = get_desired(engine, name)
        response.headers["ETag"] = f'"{desired.version}"'
        return desired

    @router.patch(
        "/v1/devices/{name}/desired",
        response_model=DesiredState,
        summary="Change a device's desired state (admin; If-Match: its version)",
        description=(
            'Send `If-Match: "<desired_version>"` (or `version` in the body). Only the keys '
            "present change; alarm_overrides merge per rule, null removes one. "
            "A stale version gets 409; the answer carries the new version (+1) as ETag."
        ),
        responses=error_responses(400, 401, 403, 404, 409, 422, 428, 503),
    )
    def change_desired(
        name: DeviceNamePath,
        patch: DesiredPatch,
        response: Response,
        _: Annotated[AdminPrincipal, Depends(guards.admin)],
        if_match: Annotated[str | None, Header(max_length=64)] = None,
    ) -> DesiredState:
        expected = expected_version(if_match, patch.version)
        desired = patch_desired(engine, name, expected, patch)
        response.headers["ETag"] = f'"{desired.version}"'
        return desired

    return router


def expected_version(if_match: str | None, body_version: int | None) -> int:
    """The desired version a PATCH is based on. Raises PreconditionRequired (neither given),
    BodyMalformed (an If-Match that is not one version, or one that disagrees with the body)."""
    if if_match is None:
        if body_version is None:
            raise PreconditionRequired(
                'send If-Match: "<desired_version>" (from GET .../desired or the twin)'
            )
        return body_version
    tag = if_match.strip().removeprefix("W/").strip('"')
    if not re.fullmatch(r"[0-9]{1,18}", tag):
        raise BodyMalformed(f'If-Match must be one desired version like "3", got {if_match!r}')
    version = int(tag)
    if body_version is not None and body_version != version:
        raise BodyMalformed("If-Match and body version disagree")
    return version
