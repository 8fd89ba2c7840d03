"""The cloud HTTP API: batch ingest, twins, the device registry, the fleet page.

``create_app(config, engine)`` builds the app; there is no global app, and the app keeps
no state of its own between requests (everything lives in the database), so any number
of replicas can serve one database behind a load balancer.

Auth: ``Authorization: Bearer <token>``, a device token or the admin token. A device
writes only its own batches and reads only its own twin and summaries (403 otherwise);
fleet operations need the admin token. The fleet page (GET /) also takes a session cookie
set by POST /login (HttpOnly, SameSite=Strict, signed, 12 h), so a browser can open it.
"""

# No `from __future__ import annotations`: FastAPI must resolve the Depends() closures
# in the signatures below, and string annotations cannot name local functions.

import asyncio
import hashlib
import hmac
import logging
import re
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Annotated, Any
from urllib.parse import parse_qs

from fastapi import Depends, FastAPI, Header, Path, Query, Request, Response, Security
from fastapi.concurrency import run_in_threadpool
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from fastapi.security import HTTPAuthorizationCredentials
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel
from sqlalchemy import Engine, text
from sqlalchemy.exc import OperationalError

from cloud_sync import __version__
from cloud_sync.config import CloudConfig
from cloud_sync.db.session import current_revision, head_revision
from cloud_sync.errors import (
    AccessDenied,
    BodyMalformed,
    BodyTooLarge,
    PreconditionRequired,
    RequestRejected,
)
from cloud_sync.fleet import (
    STATIC,
    DeviceOverview,
    make_environment,
    overview,
    render_fleet_page,
    render_login_page,
)
from cloud_sync.http.guards import BEARER, Guards
from cloud_sync.http.releases import releases_router
from cloud_sync.ingest import (
    body_digest,
    check_content_length,
    decode_body,
    parse_batch,
    store_batch,
)
from cloud_sync.registry import (
    DEVICE_NAME_PATTERN,
    AdminPrincipal,
    Authenticator,
    DeviceName,
    DevicePrincipal,
    Principal,
    add_device,
)
from cloud_sync.twin import (
    MAX_LIMIT,
    DesiredPatch,
    Twin,
    get_desired,
    get_twin,
    list_summaries,
    patch_desired,
)
from edgetwin_contracts.batch import (
    MAX_BATCH_BYTES,
    MAX_BATCH_DECOMPRESSED_BYTES,
    Batch,
    BatchAck,
    DesiredState,
    SummaryRecord,
)

log = logging.getLogger(__name__)

SESSION_COOKIE = "cloud_sync_fleet"
SESSION_TTL_S = 12 * 3600
RETRY_AFTER_S = 5
"""Told to clients when the database is unavailable (503)."""


class Health(BaseModel):
    status: str
    version: str


class ErrorDetail(BaseModel):
    """Every 4xx/5xx answer: ``detail`` is a sentence, or for 422 a list of
    ``{"loc": [...], "msg": ..., "type": ...}``, one per problem."""

    detail: str | list[dict[str, Any]]


class NewDevice(BaseModel):
    name: DeviceName


class DeviceToken(BaseModel):
    """A new device's token: shown once, stored only as its hash."""

    name: str
    token: str


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {code: {"model": ErrorDetail} for code in codes}


DeviceNamePath = Annotated[str, Path(pattern=DEVICE_NAME_PATTERN, max_length=64)]


def create_app(config: CloudConfig, engine: Engine) -> FastAPI:
    """The app for ``config`` on ``engine`` (migrated: ``cloud_sync.db.session.upgrade``)."""
    app = FastAPI(
        title="cloud-sync",
        version=__version__,
        description="edgetwin cloud: batch ingest, device twins, fleet view. See docs/cloud.md.",
        # One schema per model, as the device sees it: simpler for clients and fuzzers.
        separate_input_output_schemas=False,
    )
    auth = Authenticator(engine, config.auth.admin_sha256())
    templates = make_environment()
    session_key = hashlib.sha256(
        b"cloud-sync fleet session\x00" + (auth.admin_sha256 or "").encode()
    ).digest()
    # Ingests run on threads of their own. SQLite: one, the single writer, so batches
    # queue in arrival order instead of contending for the write lock; PostgreSQL: one
    # per pooled connection (pool_size + overflow).
    ingest_threads = ThreadPoolExecutor(
        1 if engine.dialect.name == "sqlite" else 2 * config.database.pool_size,
        thread_name_prefix="cloud-sync-ingest",
    )
    bearer = BEARER

    @app.exception_handler(RequestRejected)
    async def _rejected(request: Request, exc: RequestRejected) -> JSONResponse:
        return JSONResponse({"detail": exc.detail}, status_code=exc.status, headers=exc.headers)

    @app.exception_handler(OperationalError)
    async def _database_down(request: Request, exc: OperationalError) -> JSONResponse:
        log.error("database unavailable: %s", exc.orig)
        return JSONResponse(
            {"detail": "database unavailable; retry later"},
            status_code=503,
            headers={"Retry-After": str(RETRY_AFTER_S)},
        )

    guards = Guards(auth)
    principal, admin, device = guards.principal, guards.admin, guards.device

    async def batch_device(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)],
    ) -> DevicePrincipal:
        # `device` for the batch route, without a threadpool hop and, for a token seen in
        # the last TOKEN_CACHE_TTL_S, without the database (store_batch checks it again).
        token = credentials.credentials if credentials else None
        who = auth.cached(token)
        if who is None:
            who = await run_in_threadpool(auth.authenticate_cached, token)
        if not isinstance(who, DevicePrincipal):
            raise AccessDenied("this needs a device token (batches belong to a device)")
        return who

    def reader(name: DeviceNamePath, who: Annotated[Principal, Depends(principal)]) -> str:
        if not who.may_read(name):
            raise AccessDenied("a device token reads only its own device")
        return name

    @app.get("/health", response_model=Health, summary="Liveness: the process answers")
    def health() -> Health:
        return Health(status="ok", version=__version__)

    @app.get(
        "/ready",
        response_model=Health,
        summary="Readiness: the database answers and is migrated",
        responses=_errors(503),
    )
    def ready(response: Response) -> Health:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        if current_revision(engine) != head_revision():
            response.status_code = 503
            return Health(status="schema not migrated", version=__version__)
        return Health(status="ready", version=__version__)

    @app.post(
        "/v1/batches",
        response_model=BatchAck,
        summary="Ingest a device's batch (idempotent on its sequence)",
        description=(
            "Body: a JSON Batch, optionally `Content-Encoding: gzip`; at most "
            f"{MAX_BATCH_BYTES} bytes as sent and {MAX_BATCH_DECOMPRESSED_BYTES} decoded. "
            "A resend of a stored sequence answers duplicate=true and stores nothing."
        ),
        responses=_errors(400, 401, 403, 409, 413, 415, 422, 503),
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Batch"}}},
            }
        },
    )
    async def post_batch(
        request: Request, who: Annotated[DevicePrincipal, Depends(batch_device)]
    ) -> Response:
        check_content_length(request.headers.get("content-length"))
        raw = await _read_capped(request, MAX_BATCH_BYTES)
        # Decode, validate and store in one trip to the ingest threads.
        ack = await asyncio.get_running_loop().run_in_executor(
            ingest_threads, ingest, raw, request.headers.get("content-encoding"), who
        )
        # The bytes FastAPI would send for response_model=BatchAck, without validating the
        # model it just built again.
        return Response(ack.model_dump_json(), media_type="application/json")

    def ingest(raw: bytes, content_encoding: str | None, who: DevicePrincipal) -> BatchAck:
        data = decode_body(raw, content_encoding)
        now = time.time()
        batch = parse_batch(data, now, config.ingest.max_future_skew_s)
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

    @app.get(
        "/v1/twin",
        response_model=Twin,
        summary="The calling device's own twin",
        responses=_errors(401, 403, 503),
    )
    def own_twin(who: Annotated[DevicePrincipal, Depends(device)]) -> Twin:
        return get_twin(engine, who.name)

    @app.get(
        "/v1/devices",
        response_model=list[DeviceOverview],
        summary="Fleet overview (admin)",
        responses=_errors(401, 403, 503),
    )
    def devices(_: Annotated[AdminPrincipal, Depends(admin)]) -> list[DeviceOverview]:
        return overview(engine, config.fleet)

    @app.post(
        "/v1/devices",
        response_model=DeviceToken,
        status_code=201,
        summary="Register a device (admin); its token is shown only in this answer",
        responses=_errors(400, 401, 403, 409, 422, 503),
    )
    def new_device(body: NewDevice, _: Annotated[AdminPrincipal, Depends(admin)]) -> DeviceToken:
        return DeviceToken(name=body.name, token=add_device(engine, body.name))

    @app.get(
        "/v1/devices/{name}/twin",
        response_model=Twin,
        summary="A device's twin (admin, or that device)",
        responses=_errors(401, 403, 404, 422, 503),
    )
    def device_twin(name: Annotated[str, Depends(reader)]) -> Twin:
        return get_twin(engine, name)

    @app.get(
        "/v1/devices/{name}/desired",
        response_model=DesiredState,
        summary="A device's desired state, with its version as ETag (admin, or that device)",
        responses=_errors(401, 403, 404, 422, 503),
    )
    def device_desired(name: Annotated[str, Depends(reader)], response: Response) -> DesiredState:
        desired = get_desired(engine, name)
        response.headers["ETag"] = f'"{desired.version}"'
        return desired

    @app.patch(
        "/v1/devices/{name}/desired",
        response_model=DesiredState,
        summary="Change a device's desired state (admin; If-Match: its version)",
        description=(
            'Send `If-Match: "<desired_version>"` (or `version` in the body). Only the keys '
            "present change; alarm_overrides merge per rule, null removes one. "
            "A stale version gets 409; the answer carries the new version (+1) as ETag."
        ),
        responses=_errors(400, 401, 403, 404, 409, 422, 428, 503),
    )
    def change_desired(
        name: DeviceNamePath,
        patch: DesiredPatch,
        response: Response,
        _: Annotated[AdminPrincipal, Depends(admin)],
        if_match: Annotated[str | None, Header(max_length=64)] = None,
    ) -> DesiredState:
        expected = _expected_version(if_match, patch.version)
        desired = patch_desired(engine, name, expected, patch)
        response.headers["ETag"] = f'"{desired.version}"'
        return desired

    @app.get(
        "/v1/devices/{name}/summaries",
        response_model=list[SummaryRecord],
        summary="A device's interval summaries (admin, or that device)",
        description="Ascending by start. With `since`: the first `limit` with start > since; "
        "without: the newest `limit`.",
        responses=_errors(401, 403, 404, 422, 503),
    )
    def summaries(
        name: Annotated[str, Depends(reader)],
        channel: Annotated[
            str | None, Query(min_length=1, max_length=64, pattern=r"^[^\x00]+$")
        ] = None,
        since: Annotated[
            float | None, Query(description="UNIX seconds", allow_inf_nan=False)
        ] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 1000,
    ) -> list[SummaryRecord]:
        return list_summaries(engine, name, channel, since, limit)

    # --- the fleet page -----------------------------------------------------------------

    def _session_cookie(expires: int) -> str:
        mac = hmac.new(session_key, str(expires).encode(), hashlib.sha256).hexdigest()
        return f"{expires}.{mac}"

    def _is_valid_session(cookie: str | None) -> bool:
        if not cookie or auth.admin_sha256 is None:
            return False
        expires, _, _mac = cookie.partition(".")
        if not expires.isdigit() or int(expires) < time.time():
            return False
        return hmac.compare_digest(cookie, _session_cookie(int(expires)))

    @app.get(
        "/",
        response_class=HTMLResponse,
        summary="Fleet page (admin: bearer token or the session cookie of POST /login)",
        responses={401: {"content": {"text/html": {}}, "description": "the login form"}},
    )
    def fleet_page(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)],
    ) -> HTMLResponse:
        is_admin = (credentials is not None and auth.is_admin_token(credentials.credentials)) or (
            _is_valid_session(request.cookies.get(SESSION_COOKIE))
        )
        if not is_admin:
            return HTMLResponse(render_login_page(templates, None, __version__), status_code=401)
        return HTMLResponse(render_fleet_page(templates, engine, config.fleet, __version__))

    @app.post(
        "/login",
        summary="Fleet page login: admin token in a form, answered with a session cookie",
        responses={
            303: {"description": "logged in: cookie set, go to /"},
            400: {"content": {"text/html": {}}, "description": "not a login form"},
            413: {"model": ErrorDetail},
            401: {"content": {"text/html": {}}, "description": "wrong token: the form again"},
        },
        response_class=HTMLResponse,
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "application/x-www-form-urlencoded": {
                        "schema": {
                            "type": "object",
                            "properties": {"token": {"type": "string"}},
                            "required": ["token"],
                        }
                    }
                },
            }
        },
    )
    async def login(request: Request) -> Response:
        raw = await _read_capped(request, 4096)
        try:
            form = parse_qs(raw.decode("utf-8", "replace"), max_num_fields=10)
        except ValueError:  # more fields than a login form has
            page = render_login_page(templates, "That is not the login form.", __version__)
            return HTMLResponse(page, status_code=400)
        token = (form.get("token") or [""])[0]
        if not token or not auth.is_admin_token(token):
            page = render_login_page(templates, "That is not the admin token.", __version__)
            return HTMLResponse(page, status_code=401)
        expires = int(time.time()) + SESSION_TTL_S
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(
            SESSION_COOKIE,
            _session_cookie(expires),
            max_age=SESSION_TTL_S,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
        return response

    @app.post(
        "/logout",
        summary="Fleet page logout: clears the session cookie",
        responses={303: {"description": "cookie cleared, go to /"}},
        response_class=HTMLResponse,
    )
    def logout() -> Response:
        response = RedirectResponse("/", status_code=303)
        response.delete_cookie(SESSION_COOKIE, httponly=True, samesite="strict")
        return response

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
                separate_input_output_schemas=False,
            )
            # /v1/batches reads its body itself (size caps, gzip): publish the Batch schema.
            batch = Batch.model_json_schema(ref_template="#/components/schemas/{model}")
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            for name, definition in batch.pop("$defs", {}).items():
                components.setdefault(name, definition)
            components["Batch"] = batch
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    # The fleet page's own script (no external resources).
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    # Model releases: docs/releases.md.
    app.include_router(releases_router(config, engine, guards))
    return app


async def _read_capped(request: Request, limit: int) -> bytes:
    """The request body, refused (BodyTooLarge) as soon as it passes ``limit`` bytes."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise BodyTooLarge(f"body exceeds the cap of {limit} bytes")
    return bytes(body)


def _expected_version(if_match: str | None, body_version: int | None) -> int:
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
