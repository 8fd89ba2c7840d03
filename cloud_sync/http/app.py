"""The cloud HTTP API: ``create_app(config, engine, jobs=...)`` assembles the routers.

One router per domain: ingest (``POST /v1/batches``), twins, devices, the fleet page,
releases, and the service's health. There is no global app, and the app keeps no state
of its own between requests (everything lives in the database), so any number of
replicas can serve one database behind a load balancer. Every error answer has one
shape (``error_model``).

Auth: ``Authorization: Bearer <token>``, a device token or the admin token. A device
writes only its own batches and reads only its own twin and summaries (403 otherwise);
fleet operations need the admin token. The fleet page (GET /) also takes a session cookie
set by POST /login (``fleet_page``), so a browser can open it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel
from sqlalchemy import Engine

from cloud_sync import __version__
from cloud_sync.config import CloudConfig
from cloud_sync.fleet import PresenceLookup
from cloud_sync.http.devices import devices_router
from cloud_sync.http.error_model import install_error_handlers
from cloud_sync.http.fleet_page import fleet_page_router
from cloud_sync.http.guards import Guards
from cloud_sync.http.health import health_router
from cloud_sync.http.ingest import ingest_router
from cloud_sync.http.metrics import metrics_router
from cloud_sync.http.releases import releases_router
from cloud_sync.http.twins import twins_router
from cloud_sync.http.whatif import whatif_router
from cloud_sync.jobs import ServiceJob
from cloud_sync.metrics import CloudMetrics
from cloud_sync.registry import Authenticator
from edgetwin_contracts.batch import Batch


def create_app(
    config: CloudConfig,
    engine: Engine,
    *,
    jobs: Sequence[ServiceJob] = (),
    presence: PresenceLookup | None = None,
) -> FastAPI:
    """The app for ``config`` on ``engine`` (migrated: ``cloud_sync.db.session.upgrade``).

    ``presence``: who is online over MQTT (``cloud_sync.mqtt``), for the fleet views.
    ``jobs`` run while the app serves: started by its lifespan's startup, stopped (and
    joined) at its shutdown (``cloud_sync.jobs.serve_jobs`` builds ``serve``'s).
    """

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        for job in jobs:
            job.start()
        try:
            yield
        finally:
            # A job's stop may wait for a retrain child: off the event loop.
            await asyncio.gather(*(asyncio.to_thread(job.stop) for job in jobs))

    app = FastAPI(
        title="cloud-sync",
        version=__version__,
        description="edgetwin cloud: batch ingest, device twins, fleet view. See docs/cloud.md.",
        # One schema per model, as the device sees it: simpler for clients and fuzzers.
        separate_input_output_schemas=False,
        lifespan=lifespan,
    )
    install_error_handlers(app)
    auth = Authenticator(engine, config.auth.admin_sha256())
    guards = Guards(auth)
    metrics = CloudMetrics(engine, config.fleet)
    app.include_router(health_router(engine))
    app.include_router(metrics_router(metrics, guards))
    app.include_router(ingest_router(config, engine, guards, metrics))
    app.include_router(twins_router(engine, guards))
    app.include_router(devices_router(config.fleet, engine, guards, presence))
    app.include_router(whatif_router(config, engine, guards))
    app.include_router(fleet_page_router(config.fleet, engine, auth, presence))
    app.include_router(releases_router(config, engine, guards))
    _publish_schema(app, Batch)
    return app


def _publish_schema(app: FastAPI, model: type[BaseModel]) -> None:
    """Add ``model``'s schema to the app's OpenAPI components: a route that reads its body
    itself (the batch: size caps, gzip) refers to it by name."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
                separate_input_output_schemas=False,
            )
            body = model.model_json_schema(ref_template="#/components/schemas/{model}")
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            for name, definition in body.pop("$defs", {}).items():
                components.setdefault(name, definition)
            components[model.__name__] = body
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
