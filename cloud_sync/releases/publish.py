"""Publishing a release: store its bundle, record it with its plan of stages, and offer
it to its first stage (docs/releases.md)."""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import TypeAdapter, ValidationError
from sqlalchemy import Connection, Engine, insert
from sqlalchemy.exc import IntegrityError

from cloud_sync.db.models import Release
from cloud_sync.db.session import write_lock
from cloud_sync.releases.errors import BundleRefused, ReleaseExists, ReleaseInvalid
from cloud_sync.releases.groups import group_members
from cloud_sync.releases.model import EvaluationResult, ReleaseInfo, ReleaseKind, ReleaseState
from cloud_sync.releases.offers import offer_stage
from cloud_sync.releases.records import device_id_of, get_release, release_row, set_state
from cloud_sync.releases.rollout import advance
from cloud_sync.releases.signing import sign_bundle
from cloud_sync.releases.stages import Stage, plan_stages
from cloud_sync.releases.store import BundleStore, StoredBundle
from edgetwin_contracts.bundle import MAX_MANIFEST_BYTES, MAX_MODEL_BYTES, read_bundle_file
from edgetwin_contracts.errors import BundleRejected
from edgetwin_contracts.manifest import MANIFEST_FILE, MODEL_FILE, ReleaseVersion

log = logging.getLogger(__name__)
_VERSION = TypeAdapter(ReleaseVersion)


def check_version(version: str) -> None:
    """Raise ReleaseInvalid unless ``version`` is a plain release version
    (``[A-Za-z0-9._-]+``, not '.' or '..'): it names folders on devices."""
    try:
        _VERSION.validate_python(version)
    except ValidationError as exc:
        problem = exc.errors(include_url=False)[0]["msg"]
        raise ReleaseInvalid(
            f"version {version!r}: {problem} (letters, digits, '.', '_' and '-' only)"
        ) from None


def publish_release(
    engine: Engine,
    store: BundleStore,
    bundle_dir: Path,
    *,
    version: str,
    device: str | None = None,
    canary_group: str | None = None,
    canary_percent: int | None = None,
    report_dir: Path | None = None,
    private_key: Ed25519PrivateKey | None = None,
    now: float | None = None,
) -> ReleaseInfo:
    """Store the bundle, create the release and offer it to its first stage.

    The release's kind comes from the bundle: a manifest with a ``twin`` spec (a bundle
    of ``model_export.twin_export.build_twin``) makes a twin release, offered as the
    devices' desired twin; any other a model release, offered as their desired model.

    ``private_key``: re-sign a copy of the bundle first (the caller's folder is not
    touched), setting the manifest's model.version to ``version``; without it the
    bundle must already be signed by the release key and carry ``version``.
    Targets: ``device`` (straight to it), else a canary stage (``canary_group`` and/or
    ``canary_percent``) before the whole fleet, else the whole fleet at once.

    Raises BundleRefused, ReleaseInvalid, ReleaseExists, DeviceNotFound.
    """
    now = time.time() if now is None else now
    check_version(version)
    stages = plan_stages(device, canary_group, canary_percent)
    if report_dir is not None and not report_dir.is_dir():
        raise ReleaseInvalid(f"report folder {report_dir} does not exist")
    stored = _store_bundle(store, bundle_dir, version, private_key)
    if stored.manifest.model.version != version:
        raise ReleaseInvalid(
            f"the bundle's manifest says model.version {stored.manifest.model.version!r}, "
            f"not {version!r}: re-sign it with the release key (which sets the version) "
            "or publish it as its own version"
        )
    with write_lock(engine), engine.begin() as conn:
        if device is not None:
            device_id_of(conn, device)
        if canary_group is not None and not group_members(conn, canary_group):
            raise ReleaseInvalid(f"canary group {canary_group!r} has no devices")
        release_id = _insert_release(
            conn,
            stored,
            version,
            stages,
            now,
            device=device,
            canary_group=canary_group,
            canary_percent=canary_percent,
            report_dir=report_dir,
        )
        result = EvaluationResult()
        offer_stage(conn, release_row(conn, release_id, lock=True), 0, now, result)
        state = ReleaseState.CANARY if len(stages) > 1 else ReleaseState.WIDENING
        set_state(conn, release_id, state, None, now)
        advance(conn, release_row(conn, release_id, lock=True), now, result)
        log.info(
            "%s release %d (%s %s, %s) offered to %s",
            ReleaseKind.of(stored.manifest).value,
            release_id,
            stored.manifest.model.name,
            version,
            stored.sha256[:12],
            ", ".join(d for _, d in result.offered) or "no device yet",
        )
    return get_release(engine, release_id)


def _insert_release(
    conn: Connection,
    stored: StoredBundle,
    version: str,
    stages: list[Stage],
    now: float,
    *,
    device: str | None,
    canary_group: str | None,
    canary_percent: int | None,
    report_dir: Path | None,
) -> int:
    """The new release's id. Raises ReleaseExists (the model, or the twin, has that
    version already)."""
    try:
        release_id: int = conn.execute(
            insert(Release)
            .returning(Release.id)
            .values(
                model_name=stored.manifest.model.name,
                version=version,
                bundle_sha256=stored.sha256,
                size_bytes=stored.size_bytes,
                created_at=now,
                target_device=device,
                canary_group=canary_group,
                canary_percent=canary_percent,
                stages=stages,
                stage=0,
                state=ReleaseState.STAGED.value,
                reason=None,
                updated_at=now,
                report_path=None if report_dir is None else str(report_dir.resolve()),
                sample_period_s=stored.manifest.input.sample_period_s,
                kind=ReleaseKind.of(stored.manifest).value,
            )
        ).scalar_one()
    except IntegrityError:
        raise ReleaseExists(
            f"model {stored.manifest.model.name!r} already has a release {version!r}"
        ) from None
    return release_id


def _store_bundle(
    store: BundleStore, bundle_dir: Path, version: str, private_key: Ed25519PrivateKey | None
) -> StoredBundle:
    """The stored bundle; re-signed first on a copy when ``private_key`` is given (only
    the manifest and the model are copied, read as regular files: no symlink followed,
    no FIFO waited on)."""
    if private_key is None:
        return store.put(bundle_dir)
    try:
        files = {
            MANIFEST_FILE: read_bundle_file(
                bundle_dir / MANIFEST_FILE, MAX_MANIFEST_BYTES, str(bundle_dir)
            ),
            MODEL_FILE: read_bundle_file(bundle_dir / MODEL_FILE, MAX_MODEL_BYTES, str(bundle_dir)),
        }
    except BundleRejected as exc:
        raise BundleRefused(f"bundle {bundle_dir} refused: {exc}") from None
    with tempfile.TemporaryDirectory(prefix="release-") as tmp:
        staging = Path(tmp) / "bundle"
        staging.mkdir()
        for name, data in files.items():
            (staging / name).write_bytes(data)
        sign_bundle(staging, private_key, version=version)
        return store.put(staging)
