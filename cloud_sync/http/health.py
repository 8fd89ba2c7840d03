"""Liveness and readiness: ``GET /health`` and ``GET /ready`` (no token)."""

# No `from __future__ import annotations`: FastAPI resolves the route signatures.

from fastapi import APIRouter, Response
from pydantic import BaseModel
from sqlalchemy import Engine, text

from cloud_sync import __version__
from cloud_sync.db.session import current_revision, head_revision
from cloud_sync.http.error_model import error_response, error_responses

SCHEMA_NOT_MIGRATED = "schema_not_migrated"


class Health(BaseModel):
    status: str
    version: str


def health_router(engine: Engine) -> APIRouter:
    """``/health`` (the process answers) and ``/ready`` (the database answers and is at
    the newest migration; 503 otherwise)."""
    router = APIRouter(tags=["service"])

    @router.get("/health", response_model=Health, summary="Liveness: the process answers")
    def health() -> Health:
        return Health(status="ok", version=__version__)

    @router.get(
        "/ready",
        response_model=Health,
        summary="Readiness: the database answers and is migrated",
        responses=error_responses(503),
    )
    def ready() -> Health | Response:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        current, head = current_revision(engine), head_revision()
        if current != head:
            return error_response(
                503,
                SCHEMA_NOT_MIGRATED,
                f"schema not migrated: the database is at {current or 'no revision'}, "
                f"this version needs {head} (cloud-sync db upgrade)",
            )
        return Health(status="ready", version=__version__)

    return router
