"""Batch ingest: ``POST /v1/batches`` (a device's own token).

The route reads the body itself (size caps before anything is buffered, gzip decoded by
``cloud_sync.ingest``), so its OpenAPI body is the ``Batch`` schema the app publishes.
"""

# No `from __future__ import annotations`: FastAPI resolves the Depends() closures.

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from sqlalchemy import Engine

from cloud_sync.config import CloudConfig
from cloud_sync.errors import RequestRejected
from cloud_sync.http.bodies import read_capped
from cloud_sync.http.error_model import error_name, error_responses
from cloud_sync.http.guards import Credentials, Guards
from cloud_sync.ingest import (
    body_digest,
    check_content_length,
    decode_body,
    parse_batch,
    store_batch,
)
from cloud_sync.metrics import CloudMetrics
from cloud_sync.registry import DevicePrincipal
from edgetwin_contracts.batch import MAX_BATCH_BYTES, MAX_BATCH_DECOMPRESSED_BYTES, BatchAck

log = logging.getLogger(__name__)


def ingest_router(
    config: CloudConfig, engine: Engine, guards: Guards, metrics: CloudMetrics
) -> APIRouter:
    """``POST /v1/batches``; batches are decoded, validated and stored on threads of
    their own. SQLite: one, the single writer, so batches queue in arrival order instead
    of contending for the write lock; PostgreSQL: one per pooled connection."""
    router = APIRouter(tags=["ingest"])
    ingest_threads = ThreadPoolExecutor(
        1 if engine.dialect.name == "sqlite" else 2 * config.database.pool_size,
        thread_name_prefix="cloud-sync-ingest",
    )
    max_future_skew_s = config.ingest.max_future_skew_s

    def ingest(raw: bytes, content_encoding: str | None, who: DevicePrincipal) -> BatchAck:
        data = decode_body(raw, content_encoding)
        now = time.time()
        batch = parse_batch(data, now, max_future_skew_s)
        result = store_batch(engine, who.device_id, batch, body_digest(data), now, who.token_sha256)
        log.debug(
            "device %s batch %d: duplicate=%s summaries=%d alarm_events=%d",
            who.name,
            batch.sequence,
            result.ack.duplicate,
            result.stored_summaries,
            result.stored_alarm_events,
        )
        return result.ack

    def counted(raw: bytes, content_encoding: str | None, who: DevicePrincipal) -> BatchAck:
        with _counting_rejects(metrics):
            ack = ingest(raw, content_encoding, who)
        metrics.count_batch(ack.duplicate)
        return ack

    @router.post(
        "/v1/batches",
        response_model=BatchAck,
        summary="Ingest a device's batch (idempotent on its sequence)",
        description=(
            "Body: a JSON Batch, optionally `Content-Encoding: gzip`; at most "
            f"{MAX_BATCH_BYTES} bytes as sent and {MAX_BATCH_DECOMPRESSED_BYTES} decoded. "
            "A resend of a stored sequence answers duplicate=true and stores nothing."
        ),
        responses=error_responses(400, 401, 403, 409, 413, 415, 422, 503),
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Batch"}}},
            }
        },
    )
    async def post_batch(
        request: Request, who: Annotated[DevicePrincipal, Depends(_counted_guard(guards, metrics))]
    ) -> Response:
        with _counting_rejects(metrics):
            check_content_length(request.headers.get("content-length"))
            raw = await read_capped(request, MAX_BATCH_BYTES)
        # Decode, validate and store in one trip to the ingest threads.
        ack = await asyncio.get_running_loop().run_in_executor(
            ingest_threads, counted, raw, request.headers.get("content-encoding"), who
        )
        # The bytes FastAPI would send for response_model=BatchAck, without validating the
        # model it just built again.
        return Response(ack.model_dump_json(), media_type="application/json")

    return router


@contextlib.contextmanager
def _counting_rejects(metrics: CloudMetrics) -> Iterator[None]:
    """Count a RequestRejected raised inside by its error name, and let it through."""
    try:
        yield
    except RequestRejected as exc:
        metrics.count_reject(error_name(type(exc)))
        raise


def _counted_guard(
    guards: Guards, metrics: CloudMetrics
) -> Callable[[Credentials], Awaitable[DevicePrincipal]]:
    """The batch guard, with its refusals (no or unknown token, the admin's) counted."""

    async def batch_device(credentials: Credentials) -> DevicePrincipal:
        with _counting_rejects(metrics):
            return await guards.batch_device(credentials)

    return batch_device
