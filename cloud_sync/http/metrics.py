"""``GET /metrics``: the cloud's Prometheus metrics (admin token: they describe the
fleet). Prometheus: ``authorization: {credentials: <admin token>}`` in the scrape job."""

# No `from __future__ import annotations`: FastAPI resolves the Depends() closures.

from typing import Annotated

from fastapi import APIRouter, Depends, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from cloud_sync.http.error_model import error_responses
from cloud_sync.http.guards import Guards
from cloud_sync.metrics import CloudMetrics
from cloud_sync.registry import AdminPrincipal


def metrics_router(metrics: CloudMetrics, guards: Guards) -> APIRouter:
    router = APIRouter(tags=["health"])

    @router.get(
        "/metrics",
        summary="Prometheus metrics: ingest outcomes, rejects, devices, rollouts (admin)",
        responses={
            200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "text exposition"},
            **error_responses(401, 403, 503),
        },
        response_class=Response,
    )
    def metrics_page(_: Annotated[AdminPrincipal, Depends(guards.admin)]) -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return router
