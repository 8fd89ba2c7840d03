"""HTTP routes of model releases (docs/releases.md).

Devices: ``GET /v1/releases/{sha256}/bundle`` with their token, only for a bundle
offered to them; HTTP Range (206) so an interrupted download resumes, ETag = sha256.
Admins: publish, list, show, stop, roll a device back, evaluate rollouts now, read a
release's training report. The router's lifespan evaluates rollouts every
[releases] evaluate_interval_s while the server runs.
"""

# No `from __future__ import annotations`: FastAPI resolves the Depends() closures.

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator
from pathlib import Path as FsPath
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Path
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from cloud_sync.config import CloudConfig
from cloud_sync.errors import AccessDenied, DatabaseUnavailable
from cloud_sync.http.guards import Guards
from cloud_sync.registry import (
    DEVICE_NAME_PATTERN,
    AdminPrincipal,
    DevicePrincipal,
    Principal,
)
from cloud_sync.releases.config import make_store, private_key, read_only_store
from cloud_sync.releases.errors import BundleNotStored
from cloud_sync.releases.rollout import (
    ReleaseInfo,
    evaluate_rollouts,
    get_release,
    list_releases,
    may_download,
    publish_release,
    report_folder,
    rollback,
    stop_release,
)

log = logging.getLogger(__name__)

_ServerPath = Annotated[str, Field(min_length=1, max_length=4096, pattern=r"^[^\x00]+$")]
_Name = Annotated[str, Field(min_length=1, max_length=64, pattern=DEVICE_NAME_PATTERN)]
_REPORT_FILE = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$")


class PublishRequest(BaseModel):
    """POST /v1/releases: a bundle folder on the server (training output, an upload)."""

    model_config = ConfigDict(extra="forbid")

    bundle_dir: _ServerPath
    version: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[^\x00\s]+$")]
    device: _Name | None = None
    canary_group: _Name | None = None
    canary_percent: Annotated[int, Field(ge=1, le=100)] | None = None
    report_dir: _ServerPath | None = None
    sign: bool = False
    """Re-sign with [releases] private_key (sets model.version) before storing."""


class StopRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Annotated[str, Field(min_length=1, max_length=500, pattern=r"^[^\x00]+$")] = (
        "stopped by an admin"
    )


class RollbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[^\x00]+$")]
    model_name: (
        Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[^\x00]+$")] | None
    ) = None


class RolloutEvent(BaseModel):
    """One change of an evaluation pass."""

    release_id: int
    kind: str
    """installed, marked_bad, widened, stopped, completed, offered."""
    device: str | None = None
    stage: int | None = None
    reason: str | None = None


class Evaluation(BaseModel):
    events: list[RolloutEvent]


class _Detail(BaseModel):
    detail: str | list[dict[str, Any]]


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {code: {"model": _Detail} for code in codes}


Sha256Path = Annotated[str, Path(min_length=1, max_length=128)]


def releases_router(config: CloudConfig, engine: Engine, guards: Guards) -> APIRouter:
    """The release routes and the periodic rollout evaluation, for ``app.include_router``."""
    principal, admin = guards.principal, guards.admin
    interval = config.releases.evaluate_interval_s

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(_evaluate_periodically(engine, interval)) if interval else None
        try:
            yield
        finally:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    router = APIRouter(lifespan=lifespan, tags=["releases"])

    @router.get(
        "/v1/releases/{sha256}/bundle",
        summary="Download a release bundle archive (its device, or admin); Range supported",
        description=(
            "A tar of model.tflite, manifest.json, manifest.sig. A device token gets only "
            "a bundle offered to it (403 otherwise). `Range: bytes=N-` resumes (206); "
            "ETag is the archive's sha256, usable in If-Range."
        ),
        response_class=FileResponse,
        responses={
            200: {"content": {"application/x-tar": {}}, "description": "the archive"},
            206: {"content": {"application/x-tar": {}}, "description": "a byte range"},
            416: {"description": "range not satisfiable"},
            **_errors(401, 403, 404, 422, 503),
        },
    )
    def bundle(sha256: Sha256Path, who: Annotated[Principal, Depends(principal)]) -> FileResponse:
        path = read_only_store(config).path_of(sha256)
        if isinstance(who, DevicePrincipal) and not may_download(engine, who.device_id, sha256):
            raise AccessDenied("this bundle is not released to this device")
        if not path.is_file():
            raise BundleNotStored(f"no stored bundle {sha256}")
        return FileResponse(
            path,
            media_type="application/x-tar",
            headers={"ETag": f'"{sha256}"', "Cache-Control": "private, max-age=86400"},
        )

    @router.post(
        "/v1/releases",
        response_model=ReleaseInfo,
        status_code=201,
        summary="Publish a release from a bundle folder on the server (admin)",
        responses=_errors(400, 401, 403, 404, 409, 422, 503),
    )
    def publish(body: PublishRequest, _: Annotated[AdminPrincipal, Depends(admin)]) -> ReleaseInfo:
        return publish_release(
            engine,
            make_store(config),
            FsPath(body.bundle_dir),
            version=body.version,
            device=body.device,
            canary_group=body.canary_group,
            canary_percent=body.canary_percent,
            report_dir=None if body.report_dir is None else FsPath(body.report_dir),
            private_key=_signing_key(body.sign),
        )

    def _signing_key(sign: bool) -> Any:
        if not sign:
            return None
        key = private_key(config)
        if key is None:
            from cloud_sync.releases.errors import ReleasesNotConfigured

            raise ReleasesNotConfigured("sign=true but [releases] private_key is not set")
        return key

    @router.get(
        "/v1/releases",
        response_model=list[ReleaseInfo],
        summary="Releases, newest first (admin)",
        responses=_errors(401, 403, 503),
    )
    def releases(_: Annotated[AdminPrincipal, Depends(admin)]) -> list[ReleaseInfo]:
        return list_releases(engine)

    @router.get(
        "/v1/releases/{release_id}",
        response_model=ReleaseInfo,
        summary="A release with its per-device assignments (admin)",
        responses=_errors(401, 403, 404, 422, 503),
    )
    def release(
        release_id: Annotated[int, Path(ge=1, le=2**31 - 1)],
        _: Annotated[AdminPrincipal, Depends(admin)],
    ) -> ReleaseInfo:
        return get_release(engine, release_id)

    @router.post(
        "/v1/releases/{release_id}/stop",
        response_model=ReleaseInfo,
        summary="Stop a release: offer it to no more devices, withdraw pending offers (admin)",
        responses=_errors(400, 401, 403, 404, 422, 503),
    )
    def stop(
        release_id: Annotated[int, Path(ge=1, le=2**31 - 1)],
        _: Annotated[AdminPrincipal, Depends(admin)],
        body: StopRequest | None = None,
    ) -> ReleaseInfo:
        return stop_release(engine, release_id, (body or StopRequest()).reason)

    @router.post(
        "/v1/releases/evaluate",
        response_model=Evaluation,
        summary="Evaluate every active rollout now (admin)",
        responses=_errors(401, 403, 503),
    )
    def evaluate(_: Annotated[AdminPrincipal, Depends(admin)]) -> Evaluation:
        r = evaluate_rollouts(engine)
        return Evaluation(
            events=[
                *(RolloutEvent(release_id=i, kind="installed", device=d) for i, d in r.installed),
                *(
                    RolloutEvent(release_id=i, kind="marked_bad", device=d, reason=why)
                    for i, d, why in r.marked_bad
                ),
                *(RolloutEvent(release_id=i, kind="widened", stage=st) for i, st in r.widened),
                *(RolloutEvent(release_id=i, kind="stopped", reason=why) for i, why in r.stopped),
                *(RolloutEvent(release_id=i, kind="completed") for i in r.completed),
                *(RolloutEvent(release_id=i, kind="offered", device=d) for i, d in r.offered),
            ]
        )

    @router.post(
        "/v1/devices/{name}/model-rollback",
        response_model=ReleaseInfo,
        summary="Send a device back to an earlier released version (admin)",
        responses=_errors(400, 401, 403, 404, 409, 422, 503),
    )
    def device_rollback(
        name: Annotated[str, Path(pattern=DEVICE_NAME_PATTERN, max_length=64)],
        body: RollbackRequest,
        _: Annotated[AdminPrincipal, Depends(admin)],
    ) -> ReleaseInfo:
        return rollback(engine, name, body.version, model_name=body.model_name)

    @router.get(
        "/v1/releases/{release_id}/report/{file}",
        response_class=FileResponse,
        summary="A file of the release's training report, e.g. report.md, a PNG (admin)",
        responses={
            200: {"content": {"application/octet-stream": {}}, "description": "the file"},
            **_errors(401, 403, 404, 422, 503),
        },
    )
    def report(
        release_id: Annotated[int, Path(ge=1, le=2**31 - 1)],
        file: Annotated[str, Path(min_length=1, max_length=128)],
        _: Annotated[AdminPrincipal, Depends(admin)],
    ) -> FileResponse:
        folder = report_folder(engine, release_id)
        if folder is None or not _REPORT_FILE.fullmatch(file):
            raise BundleNotStored(f"release {release_id} has no report file {file!r}")
        path = folder / file
        if not path.is_file() or path.resolve().parent != folder.resolve():
            raise BundleNotStored(f"release {release_id} has no report file {file!r}")
        return FileResponse(path)

    return router


async def _evaluate_periodically(engine: Engine, interval_s: float) -> None:
    """Evaluate rollouts every ``interval_s``; a database outage is logged once."""
    failing = False
    while True:
        await asyncio.sleep(interval_s)
        try:
            result = await run_in_threadpool(evaluate_rollouts, engine)
        except (SQLAlchemyError, DatabaseUnavailable) as exc:
            if not failing:
                log.error("rollout evaluation failed (retrying every %.0f s): %s", interval_s, exc)
            failing = True
            continue
        if failing:
            log.info("rollout evaluation works again")
        failing = False
        if result.widened or result.stopped or result.completed or result.marked_bad:
            log.info("rollouts: %s", result)
