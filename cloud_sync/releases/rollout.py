"""Rollout decisions: what the devices reported about a release, and what follows.

``evaluate_rollouts`` reads what the devices reported (``reported.model`` and
``reported.model_update`` for a model release, ``reported.twin`` and
``reported.twin_update`` for a twin release): every device of a stage INSTALLED → the next stage is
offered; any device of a stage before the last REJECTED or ROLLED_BACK → the release
stops (nothing more is offered, offers not yet installed are withdrawn). A device that
marked a version bad gets its previous desired model (twin) back and is never offered that
version again. States: staged → canary (first of several stages) → widening (a later
stage, or the only one) → complete (last stage offered, every device settled); stopped.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from sqlalchemy import Connection, Engine, select, update

from cloud_sync.db.models import Device, Release, ReleaseAssignment
from cloud_sync.db.session import write_lock
from cloud_sync.releases.model import (
    ACTIVE_STATES,
    BAD,
    MAX_REASON,
    AssignmentStatus,
    EvaluationResult,
    ReleaseInfo,
    ReleaseKind,
    ReleaseState,
)
from cloud_sync.releases.offers import offer_stage, restore_previous
from cloud_sync.releases.records import get_release, release_row, set_state
from edgetwin_contracts.batch import ModelUpdateState, ReportedState

log = logging.getLogger(__name__)


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
            release = release_row(conn, release_id, lock=True)
            if release.state not in {s.value for s in ACTIVE_STATES}:
                continue
            _record_reports(conn, release, now, result)
            advance(conn, release, now, result)
    return result


def stop_release(
    engine: Engine, release_id: int, reason: str = "stopped by an admin", now: float | None = None
) -> ReleaseInfo:
    """Stop a release: nothing more is offered; offers not yet installed are withdrawn
    (those devices get their previous desired model back). Raises ReleaseNotFound."""
    now = time.time() if now is None else now
    with write_lock(engine), engine.begin() as conn:
        release = release_row(conn, release_id, lock=True)
        if release.state != ReleaseState.STOPPED:
            _stop(conn, release, reason, now)
    return get_release(engine, release_id)


def judge(
    reported: ReportedState | None,
    model_name: str,
    version: str,
    kind: ReleaseKind = ReleaseKind.MODEL,
) -> tuple[AssignmentStatus, str | None] | None:
    """What a device's report says about a release of ``kind``: INSTALLED, REJECTED or
    ROLLED_BACK with the device's reason; None: nothing final yet (not reported, still
    in progress). Only the kind's own report counts (``model_update`` / ``model`` for a
    model, ``twin_update`` / ``twin`` for a twin)."""
    if reported is None:
        return None
    update_ = kind.update_report(reported)
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
    running = kind.in_service(reported)
    if running is not None and running.version == version and running.name == model_name:
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
        verdict = judge(reported, release.model_name, release.version, ReleaseKind(release.kind))
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
            restore_previous(conn, release, row.device_id, row.previous_model)
        else:
            result.installed.append((release.id, row.name))


def advance(conn: Connection, release: Any, now: float, result: EvaluationResult) -> None:
    """Stop, widen (possibly through several empty stages) or complete ``release`` (its
    row, locked by the caller's transaction)."""
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
            settled = (AssignmentStatus.INSTALLED.value, AssignmentStatus.SKIPPED.value)
            if any(r.status not in settled for r in stage_rows):
                return
            index += 1
            conn.execute(
                update(Release)
                .where(Release.id == release.id)
                .values(stage=index, state=ReleaseState.WIDENING.value, updated_at=now)
            )
            result.widened.append((release.id, index))
            log.info("release %d widens to stage %d %s", release.id, index, release.stages[index])
            offer_stage(conn, release, index, now, result)
            continue
        # The last stage: newly registered devices join it while it is open.
        offer_stage(conn, release, index, now, result)
        pending = conn.execute(
            select(ReleaseAssignment.id)
            .where(
                ReleaseAssignment.release_id == release.id,
                ReleaseAssignment.status == AssignmentStatus.OFFERED.value,
            )
            .limit(1)
        ).first()
        if pending is None:
            set_state(conn, release.id, ReleaseState.COMPLETE, None, now)
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
        restore_previous(conn, release, row.device_id, row.previous_model)
        conn.execute(
            update(ReleaseAssignment)
            .where(ReleaseAssignment.id == row.id)
            .values(status=AssignmentStatus.WITHDRAWN.value, reason="release stopped", ts=now)
        )
    set_state(conn, release.id, ReleaseState.STOPPED, reason[:MAX_REASON], now)
    log.warning("%s release %d (%s) stopped: %s", release.kind, release.id, release.version, reason)
