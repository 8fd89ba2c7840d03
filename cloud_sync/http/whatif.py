"""POST /v1/devices/{name}/whatif: a scenario for any device, answered in the cloud from
its twin and its last synced summaries (cloud_sync/whatif.py)."""

# No `from __future__ import annotations`: FastAPI resolves the Depends() closures.

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from sqlalchemy import Engine

from cloud_sync.config import CloudConfig
from cloud_sync.errors import AccessDenied, EncodingUnsupported
from cloud_sync.http.error_model import error_responses
from cloud_sync.http.fleet_page import SESSION_COOKIE, FleetSession
from cloud_sync.http.guards import Credentials, DeviceNamePath, Guards
from cloud_sync.releases.config import read_only_store
from cloud_sync.whatif import CloudScenario, CloudWhatIf, TwinCache, cloud_what_if


def whatif_router(config: CloudConfig, engine: Engine, guards: Guards) -> APIRouter:
    router = APIRouter(tags=["twin"])
    cache = TwinCache(
        config.training.reports_dir, config.releases.public_key, read_only_store(config, engine)
    )

    @router.post(
        "/v1/devices/{name}/whatif",
        response_model=CloudWhatIf,
        summary="Roll a device's twin forward under a scenario (admin, or that device)",
        responses=error_responses(400, 401, 403, 404, 409, 422, 503),
    )
    def whatif(name: Annotated[str, Depends(guards.reader)], body: CloudScenario) -> CloudWhatIf:
        return cloud_what_if(engine, name, body, cache)

    session = FleetSession(guards.auth.admin_sha256)

    @router.post(
        "/fleet/devices/{name}/whatif",
        response_model=CloudWhatIf,
        summary="The fleet page's what-if (admin: bearer token or the page's session cookie)",
        responses=error_responses(400, 401, 403, 404, 409, 415, 422, 503),
    )
    def fleet_whatif(
        name: DeviceNamePath, body: CloudScenario, request: Request, credentials: Credentials
    ) -> CloudWhatIf:
        is_admin = (
            credentials is not None and guards.auth.is_admin_token(credentials.credentials)
        ) or session.is_valid(request.cookies.get(SESSION_COOKIE))
        if not is_admin:
            raise AccessDenied("log in to the fleet page (or send the admin token)")
        # The cookie is SameSite=Strict; a JSON body also needs a CORS preflight from
        # another site, which this service never grants.
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
            raise EncodingUnsupported("send the scenario as application/json")
        return cloud_what_if(engine, name, body, cache)

    return router
