"""Release and assignment rows: reading them (the API's and the CLI's answers) and the
small writes every release operation shares."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, insert, select, update

from cloud_sync.db.models import Device, Release, ReleaseAssignment
from cloud_sync.errors import DeviceNotFound
from cloud_sync.releases.errors import ReleaseNotFound
from cloud_sync.releases.model import (
    LIVE,
    MAX_REASON,
    AssignmentInfo,
    AssignmentStatus,
    ReleaseInfo,
    ReleaseKind,
    ReleaseState,
    bundle_url,
)
from cloud_sync.twin import desired_state


def list_releases(engine: Engine) -> list[ReleaseInfo]:
    """Every release, newest first, without assignments."""
    with engine.connect() as conn:
        rows = conn.execute(select(Release.__table__).order_by(Release.id.desc())).all()
    return [_info(row, []) for row in rows]


def get_release(engine: Engine, release_id: int) -> ReleaseInfo:
    """A release and its assignments. Raises ReleaseNotFound."""
    with engine.connect() as conn:
        row = release_row(conn, release_id)
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
        row = release_row(conn, release_id)
    return None if row.report_path is None else Path(row.report_path)


def may_download(engine: Engine, device_id: int, sha256: str) -> bool:
    """Whether a release with this bundle is offered to (or installed on) the device, or
    is its desired model or twin."""
    with engine.connect() as conn:
        found = conn.execute(
            select(ReleaseAssignment.id)
            .join(Release, Release.id == ReleaseAssignment.release_id)
            .where(
                Release.bundle_sha256 == sha256,
                ReleaseAssignment.device_id == device_id,
                ReleaseAssignment.status.in_([s.value for s in LIVE]),
            )
            .limit(1)
        ).first()
        if found is not None:
            return True
        desired = desired_state(conn, device_id)
    return any(
        release is not None and release.sha256 == sha256
        for release in (desired.model, desired.twin)
    )


def _info(row: Any, assignments: list[AssignmentInfo]) -> ReleaseInfo:
    target: dict[str, str | bool] = (
        {"device": row.target_device} if row.target_device is not None else {"fleet": True}
    )
    return ReleaseInfo(
        id=row.id,
        kind=ReleaseKind(row.kind),
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


def release_row(conn: Connection, release_id: int, lock: bool = False) -> Any:
    """The release's row (``lock``: FOR UPDATE). Raises ReleaseNotFound."""
    query = select(Release.__table__).where(Release.id == release_id)
    row = conn.execute(query.with_for_update() if lock else query).first()
    if row is None:
        raise ReleaseNotFound(f"no release {release_id}")
    return row


def device_id_of(conn: Connection, name: str) -> int:
    """Raises DeviceNotFound."""
    found = conn.execute(select(Device.id).where(Device.name == name)).scalar()
    if found is None:
        raise DeviceNotFound(f"no device named {name!r}")
    return int(found)


def set_state(
    conn: Connection, release_id: int, state: ReleaseState, reason: str | None, now: float
) -> None:
    conn.execute(
        update(Release)
        .where(Release.id == release_id)
        .values(state=state.value, reason=reason, updated_at=now)
    )


def insert_assignment(
    conn: Connection,
    release_id: int,
    device_id: int,
    stage: int,
    status: AssignmentStatus,
    reason: str | None,
    now: float,
    previous: dict[str, Any] | None,
) -> None:
    """A new assignment; ``previous``: the device's desired model (or twin) before the
    offer."""
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
