"""Offering a release to devices, and taking an offer back.

Offering sets the device's desired model (a twin release: its desired twin) through the
twin module (``ModelRelease``, desired version + 1, the twin's optimistic write), so the
device gets it in the ack of its next batch; the desired model (twin) it had before is
kept on the assignment, to be given back if the device refuses the release or the
release stops. The two kinds never touch each other's slot: a twin offer supersedes only
an earlier twin offer, and what a device refused as a model says nothing about a twin.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from sqlalchemy import Connection, Engine, select, update

from cloud_sync.db.models import Device, Release, ReleaseAssignment
from cloud_sync.db.session import write_lock
from cloud_sync.releases.errors import ReleaseNotFound, VersionMarkedBad
from cloud_sync.releases.model import (
    BAD,
    MANUAL_STAGE,
    AssignmentStatus,
    EvaluationResult,
    ReleaseInfo,
    ReleaseKind,
    bundle_url,
)
from cloud_sync.releases.records import device_id_of, get_release, insert_assignment, release_row
from cloud_sync.releases.stages import stage_devices
from cloud_sync.twin import desired_state, set_desired_model, set_desired_twin
from edgetwin_contracts.batch import DesiredState, ModelRelease, ReportedState

log = logging.getLogger(__name__)


def offer_stage(
    conn: Connection, release: Any, index: int, now: float, result: EvaluationResult
) -> None:
    """Offer ``release`` (its row) to the devices of stage ``index`` not assigned yet; a
    device that marked it bad before gets a REJECTED assignment instead."""
    assigned = set(
        conn.execute(
            select(ReleaseAssignment.device_id).where(ReleaseAssignment.release_id == release.id)
        ).scalars()
    )
    for device_id, name in stage_devices(conn, release, index):
        if device_id in assigned:
            continue
        reason = bad_reason(conn, device_id, release)
        if reason is not None:
            # Marked bad by this device before: never offered again.
            insert_assignment(
                conn, release.id, device_id, index, AssignmentStatus.REJECTED, reason, now, None
            )
            result.marked_bad.append((release.id, name, reason))
            continue
        skip = twin_skip_reason(conn, device_id, release) or period_skip_reason(
            conn, device_id, release
        )
        if skip is not None:
            insert_assignment(
                conn, release.id, device_id, index, AssignmentStatus.SKIPPED, skip, now, None
            )
            log.warning("release %s not offered to %s: %s", release.version, name, skip)
            continue
        offer(conn, release, device_id, name, index, now)
        result.offered.append((release.id, name))


def offer(
    conn: Connection,
    release: Any,
    device_id: int,
    name: str,
    stage: int,
    now: float,
    is_rollback: bool = False,
) -> None:
    """Put ``release`` into the device's desired state (its kind's slot) and record the
    offer; an offer of another release of the same kind the device has not installed
    yet is superseded."""
    kind = ReleaseKind(release.kind)
    desired = desired_state(conn, device_id, lock=True)
    before = kind.desired_release(desired)
    previous = {
        f"{kind.value}_version": kind.desired_version(desired),
        kind.value: None if before is None else before.model_dump(mode="json"),
    }
    model = ModelRelease(
        version=release.version,
        sha256=release.bundle_sha256,
        size_bytes=release.size_bytes,
        url=bundle_url(release.bundle_sha256),
        is_rollback=is_rollback,
    )
    set_desired(conn, kind, device_id, desired, release.version, model)
    same_kind = select(Release.id).where(Release.kind == kind.value)
    conn.execute(
        update(ReleaseAssignment)
        .where(
            ReleaseAssignment.device_id == device_id,
            ReleaseAssignment.release_id != release.id,
            ReleaseAssignment.release_id.in_(same_kind),
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
        insert_assignment(
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
    log.info(
        "%s release %s offered to %s (rollback=%s)", kind.value, release.version, name, is_rollback
    )


def set_desired(
    conn: Connection,
    kind: ReleaseKind,
    device_id: int,
    current: DesiredState,
    version: str | None,
    release: ModelRelease | None,
) -> None:
    """Write ``kind``'s slot of the desired state (the twin module's optimistic write)."""
    writer = set_desired_twin if kind is ReleaseKind.TWIN else set_desired_model
    writer(conn, device_id, current, version, release)


def restore_previous(conn: Connection, release: Any, device_id: int, previous: Any) -> None:
    """Give the device back the desired model (twin) it had before this release's offer,
    unless its desired state moved on to something else since. The release given back
    is marked ``is_rollback``: a device that installed the refused or halted release
    without having reported it yet goes back too (its anti-rollback would refuse the
    older version otherwise); one still running the previous release has nothing to do."""
    kind = ReleaseKind(release.kind)
    desired = desired_state(conn, device_id, lock=True)
    now_wanted = kind.desired_release(desired)
    if now_wanted is None or now_wanted.sha256 != release.bundle_sha256:
        return
    previous = previous or {}
    before = previous.get(kind.value)
    set_desired(
        conn,
        kind,
        device_id,
        desired,
        previous.get(f"{kind.value}_version"),
        None if before is None else ModelRelease.model_validate({**before, "is_rollback": True}),
    )


def bad_reason(conn: Connection, device_id: int, release: Any) -> str | None:
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
    raw = conn.execute(select(Device.reported).where(Device.id == device_id)).scalar()
    reported = None if raw is None else ReportedState.model_validate(raw)
    if reported is None:
        return None
    # The kind's own report: a twin's bad versions say nothing about a model's.
    update_ = ReleaseKind(release.kind).update_report(reported)
    return None if update_ is None else update_.bad_versions.get(release.version)


def twin_skip_reason(conn: Connection, device_id: int, release: Any) -> str | None:
    """Why the device cannot take a twin release, from what it reports: it reports
    neither a twin in service nor a twin update (no [twin] section: nothing to install
    the twin into, and offered it would only hold or stop the rollout). None: it can, it
    is a model release, or the device has reported nothing yet."""
    if release.kind != ReleaseKind.TWIN.value:
        return None
    raw = conn.execute(select(Device.reported).where(Device.id == device_id)).scalar()
    reported = None if raw is None else ReportedState.model_validate(raw)
    if reported is None or reported.twin is not None or reported.twin_update is not None:
        return None
    return "no twin: the device reports neither a twin in service nor a twin update"


def period_skip_reason(conn: Connection, device_id: int, release: Any) -> str | None:
    """Why the device cannot run the release at its period, from what it reports: a
    channel whose ``feed_period_s`` (seconds between its samples) is longer than the
    model's ``sample_period_s``. None: it can, or nothing says otherwise (the device
    checks again before installing)."""
    period = getattr(release, "sample_period_s", None)
    if period is None:
        return None
    raw = conn.execute(select(Device.reported).where(Device.id == device_id)).scalar()
    reported = None if raw is None else ReportedState.model_validate(raw)
    if reported is None:
        return None
    slower = sorted(
        (name, float(feed))
        for name, info in reported.channels.items()
        if isinstance(feed := info.get("feed_period_s"), int | float)
        and feed > period * (1.0 + 1e-9)
    )
    if not slower:
        return None
    listed = ", ".join(f"{name} every {feed:g} s" for name, feed in slower)
    return (
        f"period mismatch: the model's period is {period:g} s and the device's channels "
        f"deliver a sample less often ({listed})"
    )


def rollback(
    engine: Engine,
    device: str,
    to_version: str,
    *,
    model_name: str | None = None,
    kind: ReleaseKind | None = None,
    now: float | None = None,
) -> ReleaseInfo:
    """Ask ``device`` to go back to the released ``to_version`` (is_rollback=True, so the
    device's anti-rollback lets it through), as its model or, for a twin release, its
    twin. Raises DeviceNotFound, ReleaseNotFound (no such release, or several models or
    twins have it: give ``model_name`` or ``kind``), VersionMarkedBad (the device
    refused that version before)."""
    now = time.time() if now is None else now
    with write_lock(engine), engine.begin() as conn:
        device_id = device_id_of(conn, device)
        query = select(Release.id).where(Release.version == to_version)
        if model_name is not None:
            query = query.where(Release.model_name == model_name)
        if kind is not None:
            query = query.where(Release.kind == kind.value)
        ids = list(conn.execute(query).scalars())
        if len(ids) != 1:
            raise ReleaseNotFound(
                f"no release {to_version!r}"
                if not ids
                else f"{len(ids)} models or twins have a release {to_version!r}: name the "
                "model (or the kind)"
            )
        release = release_row(conn, ids[0], lock=True)
        reason = bad_reason(conn, device_id, release)
        if reason is not None:
            raise VersionMarkedBad(f"device {device!r} marked {to_version} bad: {reason}")
        offer(conn, release, device_id, device, MANUAL_STAGE, now, is_rollback=True)
    return get_release(engine, ids[0])
