"""HTTP routes of model releases (docs/releases.md).

Devices: ``GET /v1/releases/{sha256}/bundle`` with their token, only for a bundle
offered to them; HTTP Range (206) so an interrupted download resumes, ETag = sha256.
Admins: publish, list, show, stop, roll a device back, evaluate rollouts now, read a
release's training report. (``serve`` also evaluates rollouts periodically:
``cloud_sync.jobs``.)
"""

# No `from __future__ import annotations`: FastAPI resolves the Depends() closures.

import re
from pathlib import Path as FsPath
from typing import Annotated

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import FileResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Engine
from starlette.responses import MalformedRangeHeader, RangeNotSatisfiable

from cloud_sync.config import CloudConfig
from cloud_sync.errors import AccessDenied, BodyMalformed
from cloud_sync.http.error_model import error_responses
from cloud_sync.http.guards import DeviceNamePath, Guards
from cloud_sync.registry import DEVICE_NAME_PATTERN, AdminPrincipal, DevicePrincipal, Principal
from cloud_sync.releases.config import make_store, private_key, read_only_store
from cloud_sync.releases.errors import BundleNotStored, RangeRefused, ReleasesNotConfigured
from cloud_sync.releases.model import EvaluationResult, ReleaseInfo, ReleaseKind
from cloud_sync.releases.offers import rollback
from cloud_sync.releases.publish import publish_release
from cloud_sync.releases.records import get_release, list_releases, may_download, report_folder
from cloud_sync.releases.rollout import evaluate_rollouts, stop_release
from edgetwin_contracts.manifest import ReleaseVersion

_ServerPath = Annotated[str, Field(min_length=1, max_length=4096, pattern=r"^[^\x00]+$")]
_Name = Annotated[str, Field(min_length=1, max_length=64, pattern=DEVICE_NAME_PATTERN)]
_REPORT_FILE = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$")
ReleaseId = Annotated[int, Path(ge=1, le=2**31 - 1)]
Sha256Path = Annotated[str, Path(min_length=1, max_length=128)]


class PublishRequest(BaseModel):
    """POST /v1/releases: a bundle folder on the server (training output, an upload)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    bundle_dir: _ServerPath
    version: ReleaseVersion
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

    version: ReleaseVersion
    model_name: (
        Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[^\x00]+$")] | None
    ) = None
    kind: ReleaseKind | None = None
    """model or twin, when a model and a twin both have that version."""


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

    @classmethod
    def of(cls, r: EvaluationResult) -> "Evaluation":
        """The events of one pass, grouped by kind."""
        return cls(
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


def releases_router(config: CloudConfig, engine: Engine, guards: Guards) -> APIRouter:
    """The release routes, for ``app.include_router``."""
    router = APIRouter(tags=["releases"])
    _download_routes(router, config, engine, guards)
    _admin_routes(router, config, engine, guards)
    return router


def _download_routes(
    router: APIRouter, config: CloudConfig, engine: Engine, guards: Guards
) -> None:
    """What a device fetches (the bundle) and an admin reads (the training report)."""

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
            **error_responses(400, 401, 403, 404, 416, 422, 503),
        },
    )
    def bundle(
        sha256: Sha256Path, request: Request, who: Annotated[Principal, Depends(guards.principal)]
    ) -> FileResponse:
        store = read_only_store(config, engine)
        store.path_of(sha256)  # refuses what is not a sha256 before any lookup
        if isinstance(who, DevicePrincipal) and not may_download(engine, who.device_id, sha256):
            raise AccessDenied("this bundle is not released to this device")
        path = store.local_path(sha256)
        stat = path.stat()
        response = FileResponse(
            path,
            media_type="application/x-tar",
            headers={"ETag": f'"{sha256}"', "Cache-Control": "private, max-age=86400"},
            stat_result=stat,
        )
        _check_range(response, request, stat.st_size)
        return response

    @router.get(
        "/v1/releases/{release_id}/report/{file}",
        response_class=FileResponse,
        summary="A file of the release's training report, e.g. report.md, a PNG (admin)",
        responses={
            200: {"content": {"application/octet-stream": {}}, "description": "the file"},
            **error_responses(401, 403, 404, 422, 503),
        },
    )
    def report(
        release_id: ReleaseId,
        file: Annotated[str, Path(min_length=1, max_length=128)],
        _: Annotated[AdminPrincipal, Depends(guards.admin)],
    ) -> FileResponse:
        folder = report_folder(engine, release_id)
        if folder is None or not _REPORT_FILE.fullmatch(file):
            raise BundleNotStored(f"release {release_id} has no report file {file!r}")
        path = folder / file
        if not path.is_file() or path.resolve().parent != folder.resolve():
            raise BundleNotStored(f"release {release_id} has no report file {file!r}")
        return FileResponse(path)


def _check_range(response: FileResponse, request: Request, size: int) -> None:
    """Refuse a Range the response would refuse, in the API's error shape (Starlette
    answers those itself, in plain text). Its own parser decides, so the two never
    disagree; a Range that If-Range makes it ignore (a changed archive) is ignored here
    too. Raises BodyMalformed (400), RangeRefused (416)."""
    http_range = request.headers.get("range")
    if_range = request.headers.get("if-range")
    if http_range is None or (if_range is not None and not response._should_use_range(if_range)):
        return
    try:
        FileResponse._parse_range_header(http_range, size)
    except MalformedRangeHeader as exc:
        raise BodyMalformed(f"Range {http_range!r}: {exc.content}") from None
    except RangeNotSatisfiable as exc:
        raise RangeRefused(
            f"Range {http_range!r} starts past the end of the {size}-byte archive",
            {"Content-Range": f"bytes */{exc.max_size}"},
        ) from None


def _admin_routes(router: APIRouter, config: CloudConfig, engine: Engine, guards: Guards) -> None:
    """Publish, list, show, stop, evaluate, roll a device back."""
    Admin = Annotated[AdminPrincipal, Depends(guards.admin)]

    @router.post(
        "/v1/releases",
        response_model=ReleaseInfo,
        status_code=201,
        summary="Publish a release from a bundle folder on the server (admin)",
        responses=error_responses(400, 401, 403, 404, 409, 422, 503),
    )
    def publish(body: PublishRequest, _: Admin) -> ReleaseInfo:
        return publish_release(
            engine,
            make_store(config, engine),
            FsPath(body.bundle_dir),
            version=body.version,
            device=body.device,
            canary_group=body.canary_group,
            canary_percent=body.canary_percent,
            report_dir=None if body.report_dir is None else FsPath(body.report_dir),
            private_key=_signing_key(config) if body.sign else None,
        )

    @router.get(
        "/v1/releases",
        response_model=list[ReleaseInfo],
        summary="Releases, newest first (admin)",
        responses=error_responses(401, 403, 503),
    )
    def releases(_: Admin) -> list[ReleaseInfo]:
        return list_releases(engine)

    @router.get(
        "/v1/releases/{release_id}",
        response_model=ReleaseInfo,
        summary="A release with its per-device assignments (admin)",
        responses=error_responses(401, 403, 404, 422, 503),
    )
    def release(release_id: ReleaseId, _: Admin) -> ReleaseInfo:
        return get_release(engine, release_id)

    @router.post(
        "/v1/releases/{release_id}/stop",
        response_model=ReleaseInfo,
        summary="Stop a release: offer it to no more devices, withdraw pending offers (admin)",
        responses=error_responses(400, 401, 403, 404, 422, 503),
    )
    def stop(release_id: ReleaseId, _: Admin, body: StopRequest | None = None) -> ReleaseInfo:
        return stop_release(engine, release_id, (body or StopRequest()).reason)

    @router.post(
        "/v1/releases/evaluate",
        response_model=Evaluation,
        summary="Evaluate every active rollout now (admin)",
        responses=error_responses(401, 403, 503),
    )
    def evaluate(_: Admin) -> Evaluation:
        return Evaluation.of(evaluate_rollouts(engine))

    @router.post(
        "/v1/devices/{name}/model-rollback",
        response_model=ReleaseInfo,
        summary="Send a device back to an earlier released model or twin version (admin)",
        responses=error_responses(400, 401, 403, 404, 409, 422, 503),
    )
    def device_rollback(name: DeviceNamePath, body: RollbackRequest, _: Admin) -> ReleaseInfo:
        return rollback(engine, name, body.version, model_name=body.model_name, kind=body.kind)


def _signing_key(config: CloudConfig) -> Ed25519PrivateKey:
    """[releases] private_key. Raises ReleasesNotConfigured when it is not set."""
    key = private_key(config)
    if key is None:
        raise ReleasesNotConfigured("sign=true but [releases] private_key is not set")
    return key
