"""Device twins: reported (owned by the device) and desired (owned by the cloud).

Each half has its own version. Reported is replaced only by a report with a higher
version (``ingest.store_batch``), so a late or replayed batch never rolls it back.
Desired is written only here: by ``patch_desired`` (an admin's PATCH),
``set_desired_model`` and ``set_desired_twin`` (a model or twin release offered or
withdrawn), all with the version the writer
read (optimistic concurrency: a stale version gets VersionConflict, 409). Every batch ack
carries the whole desired state, so a device that was offline picks up every change made
meanwhile on its first batch back, and says in its next report which desired version it
applied (``reported.desired_version_applied``) and what it refused.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import Connection, Engine, func, select, update

from cloud_sync.db.models import Device, Release, StoredAlarm, StoredSummary
from cloud_sync.errors import DeviceNotFound, ReleaseKindMismatch, VersionConflict
from edgetwin_contracts.batch import (
    AlarmOverride,
    AlarmRecord,
    DesiredState,
    ModelRelease,
    ReportedState,
    SummaryRecord,
)
from edgetwin_contracts.manifest import ReleaseVersion

MAX_LIMIT = 10_000


class TwinCounters(BaseModel):
    batches: int
    """Batches stored."""
    duplicates: int
    """Resends answered with duplicate=true."""
    sequence_gaps: int
    """Sequence numbers the device skipped."""


class Twin(BaseModel):
    """A device's twin as the API returns it (GET /v1/twin, /v1/devices/{name}/twin)."""

    device: str
    reported: ReportedState | None
    """The device's newest report; None until its first batch with one."""
    reported_version: int | None
    desired: DesiredState
    desired_version: int
    is_desired_applied: bool
    """The device reported applying the current desired version."""
    last_seen: float | None
    """Server time of the last batch, UNIX seconds."""
    last_sequence: int
    """Highest batch sequence stored; 0: none yet."""
    last_summaries: dict[str, SummaryRecord]
    """Per channel, the summary with the latest start."""
    open_alarms: list[AlarmRecord]
    """Alarms not cleared, from the alarm events received (oldest first)."""
    counters: TwinCounters


_NoNul = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[^\x00]*$")]


class FiniteOverride(AlarmOverride):
    """AlarmOverride whose levels are finite (JSON has no NaN; the databases want numbers)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class DesiredPatch(BaseModel):
    """PATCH /v1/devices/{name}/desired: only the keys present change (JSON merge patch).

    ``alarm_overrides`` merges per rule name; a rule mapped to null loses its override.
    ``model_version``, ``twin_version`` or ``sync_interval_s`` set to null go back to the
    device's own. ``model_version`` may not name a twin release and ``twin_version`` may
    not name a model release (ReleaseKindMismatch, 422).
    ``version`` is the desired version the change is based on, when If-Match is not used.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    version: Annotated[int, Field(ge=0, le=2**62)] | None = None
    model_version: ReleaseVersion | None = None
    twin_version: ReleaseVersion | None = None
    alarm_overrides: dict[_NoNul, FiniteOverride | None] | None = None
    sync_interval_s: Annotated[float, Field(ge=1, le=86_400)] | None = None

    @field_validator("alarm_overrides")
    @classmethod
    def _not_null_map(
        cls, value: dict[str, FiniteOverride | None] | None
    ) -> dict[str, FiniteOverride | None] | None:
        if value is not None and len(value) > 1000:
            raise ValueError("at most 1000 alarm overrides")
        return value


def initial_desired() -> dict[str, Any]:
    """The desired columns of a newly registered device: nothing asked yet, version 0."""
    return {"desired": {}, "desired_version": 0}


def desired_state(conn: Connection, device_id: int, lock: bool = False) -> DesiredState:
    """The device's desired state; ``lock``: with its row locked (FOR UPDATE; SQLite's
    write transaction holds the database anyway) until the caller's transaction ends."""
    query = select(Device.desired, Device.desired_version).where(Device.id == device_id)
    row = conn.execute(query.with_for_update() if lock else query).one()
    return DesiredState.model_validate({**row.desired, "version": row.desired_version})


def set_desired_model(
    conn: Connection,
    device_id: int,
    current: DesiredState,
    model_version: str | None,
    model: ModelRelease | None,
) -> DesiredState:
    """Ask the device for ``model`` (None: no release; ``model_version`` None: the
    device's own), on top of ``current`` (what the caller read with
    ``desired_state(lock=True)``), in the caller's transaction. Returns the new desired
    state, version + 1.

    Raises VersionConflict when the desired state changed since ``current`` was read.
    """
    return _set_desired_release(conn, device_id, current, "model", model_version, model)


def set_desired_twin(
    conn: Connection,
    device_id: int,
    current: DesiredState,
    twin_version: str | None,
    twin: ModelRelease | None,
) -> DesiredState:
    """Ask the device for the twin release ``twin`` (None: no release; ``twin_version``
    None: the device's own twin), as ``set_desired_model`` does for its model: on top of
    ``current``, in the caller's transaction, version + 1. The desired model is not
    touched.

    Raises VersionConflict when the desired state changed since ``current`` was read.
    """
    return _set_desired_release(conn, device_id, current, "twin", twin_version, twin)


def _set_desired_release(
    conn: Connection,
    device_id: int,
    current: DesiredState,
    slot: Literal["model", "twin"],
    version: str | None,
    release: ModelRelease | None,
) -> DesiredState:
    new = DesiredState.model_validate(
        {
            **current.model_dump(mode="json"),
            f"{slot}_version": version,
            slot: None if release is None else release.model_dump(mode="json"),
            "version": current.version + 1,
        }
    )
    _write_desired(conn, device_id, current.version, new)
    return new


def _write_desired(
    conn: Connection, device_id: int, expected_version: int, desired: DesiredState
) -> None:
    # The version in the WHERE clause makes the check and the write one atomic step,
    # also between replicas.
    result = conn.execute(
        update(Device)
        .where(Device.id == device_id, Device.desired_version == expected_version)
        .values(
            desired=desired.model_dump(mode="json", exclude={"version"}),
            desired_version=desired.version,
        )
    )
    if result.rowcount != 1:
        raise VersionConflict(_stale(expected_version, None))


def _device_row(conn: Connection, name: str) -> Any:
    row = conn.execute(select(Device.__table__).where(Device.name == name)).first()
    if row is None:
        raise DeviceNotFound(f"no device named {name!r}")
    return row


def get_twin(engine: Engine, name: str) -> Twin:
    """The whole twin of device ``name``. Raises DeviceNotFound."""
    with engine.connect() as conn:
        device = _device_row(conn, name)
        latest = (
            select(StoredSummary.channel, func.max(StoredSummary.start).label("start"))
            .where(StoredSummary.device_id == device.id)
            .group_by(StoredSummary.channel)
            .subquery()
        )
        summaries = conn.execute(
            select(StoredSummary.__table__)
            .join(
                latest,
                (StoredSummary.channel == latest.c.channel)
                & (StoredSummary.start == latest.c.start),
            )
            .where(StoredSummary.device_id == device.id)
        )
        last_summaries = {s.channel: _summary(s) for s in summaries}
        alarms = conn.execute(
            select(StoredAlarm.alarm)
            .where(StoredAlarm.device_id == device.id, StoredAlarm.state != "cleared")
            .order_by(StoredAlarm.alarm_id)
        ).scalars()
        open_alarms = [AlarmRecord.model_validate(a) for a in alarms]
    reported = ReportedState.model_validate(device.reported) if device.reported else None
    return Twin(
        device=device.name,
        reported=reported,
        reported_version=device.reported_version,
        desired=DesiredState.model_validate({**device.desired, "version": device.desired_version}),
        desired_version=device.desired_version,
        is_desired_applied=reported is not None
        and reported.desired_version_applied >= device.desired_version,
        last_seen=device.last_seen,
        last_sequence=device.last_sequence,
        last_summaries=last_summaries,
        open_alarms=open_alarms,
        counters=TwinCounters(
            batches=device.batches,
            duplicates=device.duplicates,
            sequence_gaps=device.sequence_gaps,
        ),
    )


def get_desired(engine: Engine, name: str) -> DesiredState:
    """Raises DeviceNotFound."""
    with engine.connect() as conn:
        device = _device_row(conn, name)
        return desired_state(conn, device.id)


def patch_desired(
    engine: Engine, name: str, expected_version: int, patch: DesiredPatch
) -> DesiredState:
    """Apply ``patch`` if the desired version is still ``expected_version``; the version
    goes up by one. Raises DeviceNotFound, VersionConflict (409: re-read and retry)."""
    with engine.begin() as conn:
        device = _device_row(conn, name)
        if device.desired_version != expected_version:
            raise VersionConflict(_stale(expected_version, device.desired_version))
        current = DesiredState.model_validate({**device.desired, "version": 0})
        changes = patch.model_dump(exclude_unset=True, exclude={"version"})
        merged = current.model_dump(mode="json", exclude={"version"})
        for key, kind in (("model_version", "model"), ("twin_version", "twin")):
            if key in changes:
                if changes[key] is not None:
                    _check_release_kind(conn, key, kind, changes[key])
                merged[key] = changes[key]
        if "sync_interval_s" in changes:
            merged["sync_interval_s"] = changes["sync_interval_s"]
        if patch.alarm_overrides is not None:
            overrides = dict(merged["alarm_overrides"])
            for rule, override in patch.alarm_overrides.items():
                if override is None:
                    overrides.pop(rule, None)
                else:
                    overrides[rule] = override.model_dump(mode="json", exclude_none=True)
            merged["alarm_overrides"] = overrides
        elif "alarm_overrides" in changes:  # explicit null: drop every override
            merged["alarm_overrides"] = {}
        desired = DesiredState.model_validate({**merged, "version": expected_version + 1})
        _write_desired(conn, device.id, expected_version, desired)
    return desired


def _check_release_kind(conn: Connection, key: str, kind: str, version: str) -> None:
    """Raise ReleaseKindMismatch when ``version`` names only releases of the other kind
    (a twin's version as the model's, or the reverse): the device would look for it in
    the wrong slot and refuse it. A version no release has is left to the device (it
    refuses it as naming no release, docs/sync.md)."""
    kinds = set(conn.execute(select(Release.kind).where(Release.version == version)).scalars())
    if kinds and kind not in kinds:
        other = "model" if kind == "twin" else "twin"
        raise ReleaseKindMismatch(
            [
                {
                    "loc": ["body", key],
                    "msg": (
                        f"release {version} is a {other} release, not a {kind} release: "
                        f"set it as {other}_version"
                    ),
                    "type": "release_kind",
                }
            ]
        )


def _stale(expected: int, current: int | None) -> str:
    now = "" if current is None else f" (it is {current})"
    return (
        f"desired state changed since version {expected}{now}: "
        "re-read it, re-apply your change and retry with the new version"
    )


def list_summaries(
    engine: Engine, name: str, channel: str | None, since: float | None, limit: int
) -> list[SummaryRecord]:
    """Summaries of device ``name``, ascending by start. With ``since`` (UNIX s): the first
    ``limit`` with start > since (page on with the last start); without: the newest
    ``limit``. Raises DeviceNotFound."""
    with engine.connect() as conn:
        device = _device_row(conn, name)
        query = select(StoredSummary.__table__).where(StoredSummary.device_id == device.id)
        if channel is not None:
            query = query.where(StoredSummary.channel == channel)
        if since is not None:
            query = query.where(StoredSummary.start > since).order_by(
                StoredSummary.start, StoredSummary.channel
            )
            rows = list(conn.execute(query.limit(limit)))
        else:
            query = query.order_by(StoredSummary.start.desc(), StoredSummary.channel.desc())
            rows = list(conn.execute(query.limit(limit)))[::-1]
        return [_summary(s) for s in rows]


_SUMMARY_FIELDS = tuple(SummaryRecord.model_fields)


def _summary(row: Any) -> SummaryRecord:
    return SummaryRecord.model_validate({f: getattr(row, f) for f in _SUMMARY_FIELDS})
