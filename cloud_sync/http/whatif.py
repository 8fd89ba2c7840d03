"""POST /v1/devices/{name}/whatif: a scenario for any device, answered in the cloud from
its twin and its last synced summaries (cloud_sync/whatif.py)."""

# No `from __future__ import annotations`: FastAPI resolves the Depends() closures.

from typing import Annotated

from fastapi import APIRouter, Depends
from sqlalchemy import Engine

from cloud_sync.config import CloudConfig
from cloud_sync.http.error_model import error_responses
from cloud_sync.http.guards import Guards
from cloud_sync.whatif import CloudScenario, CloudWhatIf, TwinCache, cloud_what_if


def whatif_router(config: CloudConfig, engine: Engine, guards: Guards) -> APIRouter:
    router = APIRouter(tags=["twin"])
    cache = TwinCache(config.training.reports_dir, config.releases.public_key)

    @router.post(
        "/v1/devices/{name}/whatif",
        response_model=CloudWhatIf,
        summary="Roll a device's twin forward under a scenario (admin, or that device)",
        responses=error_responses(401, 403, 404, 409, 422, 503),
    )
    def whatif(name: Annotated[str, Depends(guards.reader)], body: CloudScenario) -> CloudWhatIf:
        return cloud_what_if(engine, name, body, cache)

    return router
