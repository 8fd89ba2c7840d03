"""Releases and staged rollouts.

A release is a stored bundle (``BundleStore``), a version and a plan of stages. Each
stage names devices: ``{"device": name}``, ``{"group": name}`` (a device group) or
``{"percent": p}`` (the devices whose stable hash of (release id, device name) falls in
the first p of 100 buckets; at least one device). Offering a release to a device sets
its desired state (``model_version`` and ``model``: a ``ModelRelease``), desired version
+ 1, so the device gets it in the ack of its next batch.

``evaluate_rollouts`` reads what the devices reported (``reported.model`` and
``reported.model_update``): every device of a stage INSTALLED → the next stage is
offered; any device of a stage before the last REJECTED or ROLLED_BACK → the release
stops (nothing more is offered, offers not yet installed are withdrawn). A device that
marked a version bad gets its previous desired model back and is never offered that
version again. States: staged → canary (first of several stages) → widening (a later
stage, or the only one) → complete (last stage offered, every device settled); stopped.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import BaseModel
from sqlalchemy import Connection, Engine, insert, select, update
from sqlalchemy.exc import IntegrityError

from cloud_sync.db.models import Device, Release, ReleaseAssignment
from cloud_sync.db.session import write_lock
from cloud_sync.errors import DeviceNotFound
from cloud_sync.releases.errors import (
    ReleaseExists,
    ReleaseInvalid,
    ReleaseNotFound,
    VersionMarkedBad,
)
from cloud_sync.releases.groups import group_members
from cloud_sync.releases.signing import sign_bundle
from cloud_sync.releases.store import BundleStore, StoredBundle
from edgetwin_contracts.batch import (
    DesiredState,
    ModelRelease,
    ModelUpdateState,
    ReportedState,
)

log = logging.getLogger(__name__)

MAX_REASON = 1000


class ReleaseState(StrEnum):
    STAGED = "staged"
    """Created; nothing offered yet."""
    CANARY = "canary"
    """Offered to the first stage of several; waiting for those devices."""
    WIDENING = "widening"
    """Offered to a later stage (or the only one); waiting for those devices."""
    COMPLETE = "complete"
    """The last stage is offered and every device installed it or marked it bad."""
    STOPPED = "stopped"
    """A device of a stage before the last refused it, or an admin stopped it."""


ACTIVE_STATES = (ReleaseState.STAGED, ReleaseState.CANARY, ReleaseState.WIDENING)


class AssignmentStatus(StrEnum):
    OFFERED = "offered"
    """In the device's desired state; not reported installed yet."""
    INSTALLED = "installed"
    REJECTED = "rejected"
    ROLLED_BACK = "rolled_back"
    SUPERSEDED = "superseded"
    """Another release replaced this offer before the device installed it."""
    WITHDRAWN = "withdrawn"
    """The release stopped before the device installed it; its previous model is back."""


BAD = (AssignmentStatus.REJECTED, AssignmentStatus.ROLLED_BACK)
MANUAL_STAGE = -1
"""Stage of an assignment made by ``rollback`` (outside the plan)."""


class AssignmentInfo(BaseModel):
    device: str
    stage: int
    """Index into the release's stages; -1: an explicit rollback."""
    status: AssignmentStatus
    reason: str | None
    ts: float


class ReleaseInfo(BaseModel):
    """A release as the API and the CLI show it."""

    id: int
    model_name: str
    version: str
    sha256: str
    """Of the bundle archive."""
    size_bytes: int
    url: str
    """Where devices fetch the archive (with their token)."""
    created_at: float
    target: dict[str, str | bool]
    """{"device": name} or {"fleet": true}."""
    canary_group: str | None
    canary_percent: int | None
    stages: list[dict[str, str | int]]
    stage: int
    state: ReleaseState
    reason: str | None
    """Why it stopped."""
    updated_at: float
    has_report: bool
    assignments: list[AssignmentInfo] = []


@dataclass(slots=True)
class EvaluationResult:
    """What one ``evaluate_rollouts`` pass changed."""

    installed: list[tuple[int, str]] = field(default_factory=list)
    """(release id, device) newly installed."""
    marked_bad: list[tuple[int, str, str]] = field(default_factory=list)
    """(release id, device, reason)."""
    widened: list[tuple[int, int]] = field(default_factory=list)
    """(release id, new stage)."""
    stopped: list[tuple[int, str]] = field(default_factory=list)
    completed: list[int] = field(default_factory=list)
    offered: list[tuple[int, str]] = field(default_factory=list)


def bundle_url(sha256: str) -> str:
    return f"/v1/releases/{sha256}/bundle"


def in_percent(release_id: int, device: str, percent: int) -> bool:
    """Whether ``device`` falls in the first ``percent`` of 100 buckets for this release:
    stable (a hash of both), and a device in at 10 % is in at 50 % too."""
    return _bucket(release_id, device) < percent


def _bucket(release_id: int, device: str) -> int:
    digest = hashlib.sha256(f"{release_id}\x00{device}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % 100


def plan_stages(
    device: str | None, canary_group: str | None, canary_percent: int | None
) -> list[dict[str, str | int]]:
    """The rollout plan. Raises ReleaseInvalid for contradictory or out-of-range args."""
    if device is not None:
        if canary_group is not None or canary_percent is not None:
            raise ReleaseInvalid("a release to one device has no canary stage")
        return [{"device": device}]
    if canary_percent is not None and not 1 <= canary_percent <= 100:
        raise ReleaseInvalid(f"canary_percent must be 1..100, got {canary_percent}")
    stages: list[dict[str, str | int]] = []
    if canary_group is not None:
        stages.append({"group": canary_group})
    if canary_percent is not None and canary_percent < 100:
        stages.append({"percent": canary_percent})
    stages.append({"percent": 100})
    return stages


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

    ``private_key``: re-sign a copy of the bundle first (the caller's folder is not
    touched), setting the manifest's model.version to ``version``; without it the
    bundle must already be signed by the release key and carry ``version``.
    Targets: ``device`` (straight to it), else a canary stage (``canary_group`` and/or
    ``canary_percent``) before the whole fleet, else the whole fleet at once.

    Raises BundleRefused, ReleaseInvalid, ReleaseExists, DeviceNotFound.
    """
    now = time.time() if now is None else now
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
            _device_id(conn, device)
        if canary_group is not None and not group_members(conn, canary_group):
            raise ReleaseInvalid(f"canary group {canary_group!r} has no devices")
        try:
            release_id = conn.execute(
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
                )
            ).scalar_one()
        except IntegrityError:
            raise ReleaseExists(
                f"model {stored.manifest.model.name!r} already has a release {version!r}"
            ) from None
        release = _release_row(conn, release_id, lock=True)
        result = EvaluationResult()
        _offer_stage(conn, release, 0, now, result)
        state = ReleaseState.CANARY if len(stages) > 1 else ReleaseState.WIDENING
        _set_state(conn, release_id, state, None, now)
        _advance(conn, _release_row(conn, release_id, lock=True), now, result)
        log.info(
            "release %d (%s %s, %s) offered to %s",
            release_id,
            stored.manifest.model.name,
            version,
            stored.sha256[:12],
            ", ".join(d for _, d in result.offered) or "no device yet",
        )
    return get_release(engine, release_id)


def _store_bundle(
    store: BundleStore, bundle_dir: Path, version: str, private_key: Ed25519PrivateKey | None
) -> StoredBundle:
    if private_key is None:
        return store.put(bundle_dir)
    with tempfile.TemporaryDirectory(prefix="release-") as tmp:
        staging = Path(tmp) / "bundle"
        shutil.copytree(bundle_dir, staging)
        sign_bundle(staging, private_key, version=version)
        return store.put(staging)


def rollback(
    engine: Engine,
    device: str,
    to_version: str,
    *,
    model_name: str | None = None,
    now: float | None = None,
) -> ReleaseInfo:
    """Ask ``device`` to go back to the released ``to_version`` (is_rollback=True, so the
    device's anti-rollback lets it through). Raises DeviceNotFound, ReleaseNotFound
    (no such release, or several models have it: give ``model_name``),
    VersionMarkedBad (the device refused that version before)."""
    now = time.time() if now is None else now
    with write_lock(engine), engine.begin() as conn:
        device_id = _device_id(conn, device)
        query = select(Release.id).where(Release.version == to_version)
        if model_name is not None:
            query = query.where(Release.model_name == model_name)
        ids = list(conn.execute(query).scalars())
        if len(ids) != 1:
            raise ReleaseNotFound(
                f"no release {to_version!r}"
                if not ids
                else f"{len(ids)} models have a release {to_version!r}: name the model"
            )
        release = _release_row(conn, ids[0], lock=True)
        reason = _bad_reason(conn, device_id, release)
        if reason is not None:
            raise VersionMarkedBad(f"device {device!r} marked {to_version} bad: {reason}")
        _offer(conn, release, device_id, device, MANUAL_STAGE, now, is_rollback=True)
    return get_release(engine, ids[0])


def stop_release(
    engine: Engine, release_id: int, reason: str = "stopped by an admin", now: float | None = None
) -> ReleaseInfo:
    """Stop a release: nothing more is offered; offers not yet installed are withdrawn
    (those devices get their previous desired model back). Raises ReleaseNotFound."""
    now = time.time() if now is None else now
    with write_lock(engine), engine.begin() as conn:
        release = _release_row(conn, release_id, lock=True)
        if release.state != ReleaseState.STOPPED:
            _stop(conn, release, reason, now)
    return get_release(engine, release_id)


def evaluate_rollouts(engine: Engine, now: float | None = None) -> EvaluationResult:
    """One pass over every active release: record what devices reported, widen, stop or
    complete. Safe to run from several places at once (each release is handled in its
    own transaction with its row locked)."""
    now = time.time() if now is None else now
    result = EvaluationResult()
    with engine.connect() as conn:
        ids = list(
            conn.execute(
                select(Release.id)
                .where(Release.state.in_([s.value for s in ACTIVE_STATES]))
                .order_by(Release.id)
            ).scalars()
        )
    for release_id in ids:
        with write_lock(engine), engine.begin() as conn:
            release = _release_row(conn, release_id, lock=True)
            if release.state not in {s.value for s in ACTIVE_STATES}:
                continue
            _record_reports(conn, release, now, result)
            _advance(conn, release, now, result)
    return result


# --- reading and answering ------------------------------------------------------------


def list_releases(engine: Engine) -> list[ReleaseInfo]:
    """Every release, newest first, without assignments."""
    with engine.connect() as conn:
        rows = conn.execute(select(Release.__table__).order_by(Release.id.desc())).all()
    return [_info(row, []) for row in rows]


def get_release(engine: Engine, release_id: int) -> ReleaseInfo:
    """A release and its assignments. Raises ReleaseNotFound."""
    with engine.connect() as conn:
        row = _release_row(conn, release_id)
        assignments = conn.execute(
            select(ReleaseAssignment.__table__, Device.name)
            .join(Device, Device.id == ReleaseAssignment.device_id)
            .where(ReleaseAssignment.release_id == release_id)
            .order_by(ReleaseAssignment.stage, Device.name)
        ).all()
    return _info(
        row,
        [
            AssignmentInfo(
                device=a.name,
                stage=a.stage,
                status=AssignmentStatus(a.status),
                reason=a.reason,
                ts=a.ts,
            )
            for a in assignments
        ],
    )


def report_folder(engine: Engine, release_id: int) -> Path | None:
    """The release's training report folder; None if it has none. Raises ReleaseNotFound."""
    with engine.connect() as conn:
        row = _release_row(conn, release_id)
    return None if row.report_path is None else Path(row.report_path)


def may_download(engine: Engine, device_id: int, sha256: str) -> bool:
    """Whether a release with this bundle is offered to (or installed on) the device."""
    with engine.connect() as conn:
        found = conn.execute(
            select(ReleaseAssignment.id)
            .join(Release, Release.id == ReleaseAssignment.release_id)
            .where(
                Release.bundle_sha256 == sha256,
                ReleaseAssignment.device_id == device_id,
                ReleaseAssignment.status.in_(
                    [AssignmentStatus.OFFERED.value, AssignmentStatus.INSTALLED.value]
                ),
            )
            .limit(1)
        ).first()
        if found is not None:
            return True
        desired = conn.execute(select(Device.desired).where(Device.id == device_id)).scalar()
    model = (desired or {}).get("model") or {}
    return bool(model.get("sha256") == sha256)


def _info(row: Any, assignments: list[AssignmentInfo]) -> ReleaseInfo:
    target: dict[str, str | bool] = (
        {"device": row.target_device} if row.target_device is not None else {"fleet": True}
    )
    return ReleaseInfo(
        id=row.id,
        model_name=row.model_name,
        version=row.version,
        sha256=row.bundle_sha256,
        size_bytes=row.size_bytes,
        url=bundle_url(row.bundle_sha256),
        created_at=row.created_at,
        target=target,
        canary_group=row.canary_group,
        canary_percent=row.canary_percent,
        stages=row.stages,
        stage=row.stage,
        state=ReleaseState(row.state),
        reason=row.reason,
        updated_at=row.updated_at,
        has_report=row.report_path is not None,
        assignments=assignments,
    )


# --- internals ------------------------------------------------------------------------


def _release_row(conn: Connection, release_id: int, lock: bool = False) -> Any:
    query = select(Release.__table__).where(Release.id == release_id)
    row = conn.execute(query.with_for_update() if lock else query).first()
    if row is None:
        raise ReleaseNotFound(f"no release {release_id}")
    return row


def _device_id(conn: Connection, name: str) -> int:
    found = conn.execute(select(Device.id).where(Device.name == name)).scalar()
    if found is None:
        raise DeviceNotFound(f"no device named {name!r}")
    return int(found)


def _set_state(
    conn: Connection, release_id: int, state: ReleaseState, reason: str | None, now: float
) -> None:
    conn.execute(
        update(Release)
        .where(Release.id == release_id)
        .values(state=state.value, reason=reason, updated_at=now)
    )


def _stage_devices(conn: Connection, release: Any, index: int) -> list[tuple[int, str]]:
    """(device id, name) the stage names, sorted by name."""
    stage = release.stages[index]
    if "device" in stage:
        return [(_device_id(conn, stage["device"]), stage["device"])]
    if "group" in stage:
        names = group_members(conn, stage["group"])
        query = select(Device.id, Device.name).where(Device.name.in_(names))
        return sorted(((r[0], r[1]) for r in conn.execute(query)), key=lambda d: d[1])
    percent = int(stage["percent"])
    everyone = sorted(
        ((r[0], r[1]) for r in conn.execute(select(Device.id, Device.name))), key=lambda d: d[1]
    )
    chosen = [(i, n) for i, n in everyone if in_percent(release.id, n, percent)]
    if not chosen and everyone:
        # A small fleet and a small percentage: still one canary, never none.
        chosen = [min(everyone, key=lambda d: _bucket(release.id, d[1]))]
    return chosen


def _offer_stage(
    conn: Connection, release: Any, index: int, now: float, result: EvaluationResult
) -> None:
    assigned = set(
        conn.execute(
            select(ReleaseAssignment.device_id).where(ReleaseAssignment.release_id == release.id)
        ).scalars()
    )
    for device_id, name in _stage_devices(conn, release, index):
        if device_id in assigned:
            continue
        reason = _bad_reason(conn, device_id, release)
        if reason is not None:
            # Marked bad by this device before: never offered again.
            _insert_assignment(
                conn, release.id, device_id, index, AssignmentStatus.REJECTED, reason, now, None
            )
            result.marked_bad.append((release.id, name, reason))
            continue
        _offer(conn, release, device_id, name, index, now)
        result.offered.append((release.id, name))


def _offer(
    conn: Connection,
    release: Any,
    device_id: int,
    name: str,
    stage: int,
    now: float,
    is_rollback: bool = False,
) -> None:
    desired = _locked_desired(conn, device_id)
    previous = {
        "model_version": desired.model_version,
        "model": None if desired.model is None else desired.model.model_dump(mode="json"),
    }
    model = ModelRelease(
        version=release.version,
        sha256=release.bundle_sha256,
        size_bytes=release.size_bytes,
        url=bundle_url(release.bundle_sha256),
        is_rollback=is_rollback,
    )
    _write_desired(conn, device_id, desired, release.version, model)
    # An offer of another release not installed yet is replaced by this one.
    conn.execute(
        update(ReleaseAssignment)
        .where(
            ReleaseAssignment.device_id == device_id,
            ReleaseAssignment.release_id != release.id,
            ReleaseAssignment.status == AssignmentStatus.OFFERED.value,
        )
        .values(status=AssignmentStatus.SUPERSEDED.value, reason=f"replaced by {release.version}")
    )
    existing = conn.execute(
        select(ReleaseAssignment.id).where(
            ReleaseAssignment.release_id == release.id, ReleaseAssignment.device_id == device_id
        )
    ).scalar()
    if existing is None:
        _insert_assignment(
            conn, release.id, device_id, stage, AssignmentStatus.OFFERED, None, now, previous
        )
    else:
        conn.execute(
            update(ReleaseAssignment)
            .where(ReleaseAssignment.id == existing)
            .values(
                status=AssignmentStatus.OFFERED.value,
                reason="rollback" if is_rollback else None,
                ts=now,
                previous_model=previous,
            )
        )
    log.info("release %s offered to %s (rollback=%s)", release.version, name, is_rollback)


def _insert_assignment(
    conn: Connection,
    release_id: int,
    device_id: int,
    stage: int,
    status: AssignmentStatus,
    reason: str | None,
    now: float,
    previous: dict[str, Any] | None,
) -> None:
    conn.execute(
        insert(ReleaseAssignment).values(
            release_id=release_id,
            device_id=device_id,
            stage=stage,
            status=status.value,
            reason=None if reason is None else reason[:MAX_REASON],
            ts=now,
            previous_model=previous,
        )
    )


def _locked_desired(conn: Connection, device_id: int) -> DesiredState:
    row = conn.execute(
        select(Device.desired, Device.desired_version)
        .where(Device.id == device_id)
        .with_for_update()
    ).one()
    return DesiredState.model_validate({**row.desired, "version": row.desired_version})


def _write_desired(
    conn: Connection,
    device_id: int,
    current: DesiredState,
    model_version: str | None,
    model: ModelRelease | None,
) -> None:
    """The same write as ``twin.patch_desired``: version + 1, checked in the WHERE."""
    new = current.model_copy(
        update={"model_version": model_version, "model": model, "version": current.version + 1}
    )
    DesiredState.model_validate(new.model_dump())  # the contract still holds
    done = conn.execute(
        update(Device)
        .where(Device.id == device_id, Device.desired_version == current.version)
        .values(
            desired=new.model_dump(mode="json", exclude={"version"}),
            desired_version=new.version,
        )
    )
    assert done.rowcount == 1, "desired state changed under the row lock"


def _restore_previous(conn: Connection, release: Any, device_id: int, previous: Any) -> None:
    """Give the device back the desired model it had before this release's offer, unless
    its desired state moved on to something else since."""
    desired = _locked_desired(conn, device_id)
    if desired.model is None or desired.model.sha256 != release.bundle_sha256:
        return
    previous = previous or {}
    model = previous.get("model")
    _write_desired(
        conn,
        device_id,
        desired,
        previous.get("model_version"),
        None if model is None else ModelRelease.model_validate(model),
    )


def _reported(conn: Connection, device_id: int) -> ReportedState | None:
    raw = conn.execute(select(Device.reported).where(Device.id == device_id)).scalar()
    return None if raw is None else ReportedState.model_validate(raw)


def _bad_reason(conn: Connection, device_id: int, release: Any) -> str | None:
    """Why this device refused this release before; None if it did not."""
    stored = conn.execute(
        select(ReleaseAssignment.reason).where(
            ReleaseAssignment.release_id == release.id,
            ReleaseAssignment.device_id == device_id,
            ReleaseAssignment.status.in_([s.value for s in BAD]),
        )
    ).first()
    if stored is not None:
        return stored.reason or "marked bad"
    reported = _reported(conn, device_id)
    if reported is not None and reported.model_update is not None:
        return reported.model_update.bad_versions.get(release.version)
    return None


def judge(
    reported: ReportedState | None, model_name: str, version: str
) -> tuple[AssignmentStatus, str | None] | None:
    """What a device's report says about a release: INSTALLED, REJECTED or ROLLED_BACK
    with the device's reason; None: nothing final yet (not reported, still in progress)."""
    if reported is None:
        return None
    update_ = reported.model_update
    if update_ is not None:
        about_it = update_.version == version
        if version in update_.bad_versions:
            status = (
                AssignmentStatus.ROLLED_BACK
                if about_it and update_.state == ModelUpdateState.ROLLED_BACK
                else AssignmentStatus.REJECTED
            )
            return status, update_.bad_versions[version] or update_.reason
        if about_it:
            if update_.state == ModelUpdateState.REJECTED:
                return AssignmentStatus.REJECTED, update_.reason
            if update_.state == ModelUpdateState.ROLLED_BACK:
                return AssignmentStatus.ROLLED_BACK, update_.reason
            if update_.state == ModelUpdateState.INSTALLED:
                return AssignmentStatus.INSTALLED, None
            return None  # downloading ... guarding
    if reported.model.version == version and reported.model.name == model_name:
        return AssignmentStatus.INSTALLED, None
    return None


def _record_reports(conn: Connection, release: Any, now: float, result: EvaluationResult) -> None:
    rows = conn.execute(
        select(
            ReleaseAssignment.id,
            ReleaseAssignment.device_id,
            ReleaseAssignment.status,
            ReleaseAssignment.previous_model,
            Device.name,
            Device.reported,
        )
        .join(Device, Device.id == ReleaseAssignment.device_id)
        .where(
            ReleaseAssignment.release_id == release.id,
            ReleaseAssignment.status.in_(
                [AssignmentStatus.OFFERED.value, AssignmentStatus.INSTALLED.value]
            ),
        )
    ).all()
    for row in rows:
        reported = None if row.reported is None else ReportedState.model_validate(row.reported)
        verdict = judge(reported, release.model_name, release.version)
        if verdict is None or verdict[0].value == row.status:
            continue
        status, reason = verdict
        if row.status == AssignmentStatus.INSTALLED and status == AssignmentStatus.INSTALLED:
            continue
        conn.execute(
            update(ReleaseAssignment)
            .where(ReleaseAssignment.id == row.id)
            .values(
                status=status.value,
                reason=None if reason is None else reason[:MAX_REASON],
                ts=now,
            )
        )
        if status in BAD:
            why = reason or status.value
            result.marked_bad.append((release.id, row.name, why))
            log.warning("device %s %s release %s: %s", row.name, status.value, release.version, why)
            _restore_previous(conn, release, row.device_id, row.previous_model)
        else:
            result.installed.append((release.id, row.name))


def _advance(conn: Connection, release: Any, now: float, result: EvaluationResult) -> None:
    """Stop, widen (possibly through several empty stages) or complete."""
    index = release.stage
    last = len(release.stages) - 1
    while True:
        stage_rows = conn.execute(
            select(ReleaseAssignment.status, ReleaseAssignment.reason, Device.name)
            .join(Device, Device.id == ReleaseAssignment.device_id)
            .where(ReleaseAssignment.release_id == release.id, ReleaseAssignment.stage == index)
        ).all()
        if index < last:
            bad = [r for r in stage_rows if r.status in {s.value for s in BAD}]
            if bad:
                first = bad[0]
                reason = f"stage {index} device {first.name} {first.status}: {first.reason}"
                _stop(conn, release, reason, now)
                result.stopped.append((release.id, reason))
                return
            if any(r.status != AssignmentStatus.INSTALLED.value for r in stage_rows):
                return
            index += 1
            conn.execute(
                update(Release)
                .where(Release.id == release.id)
                .values(stage=index, state=ReleaseState.WIDENING.value, updated_at=now)
            )
            result.widened.append((release.id, index))
            log.info("release %d widens to stage %d %s", release.id, index, release.stages[index])
            _offer_stage(conn, release, index, now, result)
            continue
        # The last stage: newly registered devices join it while it is open.
        _offer_stage(conn, release, index, now, result)
        pending = conn.execute(
            select(ReleaseAssignment.id)
            .where(
                ReleaseAssignment.release_id == release.id,
                ReleaseAssignment.status == AssignmentStatus.OFFERED.value,
            )
            .limit(1)
        ).first()
        if pending is None:
            _set_state(conn, release.id, ReleaseState.COMPLETE, None, now)
            result.completed.append(release.id)
            log.info("release %d complete", release.id)
        return


def _stop(conn: Connection, release: Any, reason: str, now: float) -> None:
    offered = conn.execute(
        select(
            ReleaseAssignment.id, ReleaseAssignment.device_id, ReleaseAssignment.previous_model
        ).where(
            ReleaseAssignment.release_id == release.id,
            ReleaseAssignment.status == AssignmentStatus.OFFERED.value,
        )
    ).all()
    for row in offered:
        _restore_previous(conn, release, row.device_id, row.previous_model)
        conn.execute(
            update(ReleaseAssignment)
            .where(ReleaseAssignment.id == row.id)
            .values(status=AssignmentStatus.WITHDRAWN.value, reason="release stopped", ts=now)
        )
    _set_state(conn, release.id, ReleaseState.STOPPED, reason[:MAX_REASON], now)
    log.warning("release %d (%s) stopped: %s", release.id, release.version, reason)
