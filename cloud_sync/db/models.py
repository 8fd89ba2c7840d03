"""The tables. Times are UNIX seconds (float), as on the wire; JSON columns hold contract
models dumped with ``model_dump(mode="json")``.

Changing a table means a new migration in ``migrations/versions`` (a test compares the two).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Named constraints so migrations can refer to them on every backend.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Device(Base):
    """A registered device and its twin (reported and desired, each versioned)."""

    __tablename__ = "devices"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[float] = mapped_column(Float)
    last_seen: Mapped[float | None] = mapped_column(Float)
    """Server time of the last accepted batch (duplicates included)."""
    last_sequence: Mapped[int] = mapped_column(BigInteger, default=0)
    """Highest batch sequence stored; 0: none yet."""
    reported: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    reported_version: Mapped[int | None] = mapped_column(BigInteger)
    desired: Mapped[dict[str, Any]] = mapped_column(JSON)
    """DesiredState without its version (that is desired_version)."""
    desired_version: Mapped[int] = mapped_column(BigInteger, default=0)
    batches: Mapped[int] = mapped_column(BigInteger, default=0)
    """Batches stored (duplicates not counted)."""
    duplicates: Mapped[int] = mapped_column(BigInteger, default=0)
    """Resends answered with duplicate=true."""
    sequence_gaps: Mapped[int] = mapped_column(BigInteger, default=0)
    """Sequence numbers skipped by the device (upward gaps), in total."""


class StoredBatch(Base):
    """One accepted (device, sequence): the idempotency key across replicas."""

    __tablename__ = "batches"
    __table_args__ = (UniqueConstraint("device_id", "sequence", name="uq_batches_device_sequence"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"))
    sequence: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[float] = mapped_column(Float)
    """Device clock."""
    received_at: Mapped[float] = mapped_column(Float)
    """Server clock."""
    body_sha256: Mapped[str] = mapped_column(String(64))
    """Of the decoded JSON, to notice a resend whose content changed."""
    summaries: Mapped[int] = mapped_column(Integer)
    alarm_events: Mapped[int] = mapped_column(Integer)


class StoredSummary(Base):
    """SummaryRecord, one per (device, channel, start); a later record supersedes."""

    __tablename__ = "summaries"
    __table_args__ = (
        UniqueConstraint("device_id", "channel", "start", name="uq_summaries_device_channel_start"),
        Index("ix_summaries_device_start", "device_id", "start"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"))
    sequence: Mapped[int] = mapped_column(BigInteger)
    """The batch that stored this version of the record."""
    channel: Mapped[str] = mapped_column(String(64))
    start: Mapped[float] = mapped_column(Float)
    end: Mapped[float] = mapped_column(Float)
    interval_s: Mapped[float] = mapped_column(Float)
    count: Mapped[int] = mapped_column(BigInteger)
    min: Mapped[float] = mapped_column(Float)
    max: Mapped[float] = mapped_column(Float)
    mean: Mapped[float] = mapped_column(Float)
    std: Mapped[float] = mapped_column(Float)
    last: Mapped[float] = mapped_column(Float)
    last_ts: Mapped[float] = mapped_column(Float)
    error_count: Mapped[int] = mapped_column(BigInteger)
    error_mean: Mapped[float | None] = mapped_column(Float)
    error_mae: Mapped[float | None] = mapped_column(Float)
    error_rmse: Mapped[float | None] = mapped_column(Float)
    error_max_abs: Mapped[float | None] = mapped_column(Float)
    score_max: Mapped[float | None] = mapped_column(Float)


class StoredAlarmEvent(Base):
    """AlarmEventRecord, appended in arrival order."""

    __tablename__ = "alarm_events"
    __table_args__ = (Index("ix_alarm_events_device_alarm", "device_id", "alarm_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"))
    sequence: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(16))
    ts: Mapped[float] = mapped_column(Float)
    alarm_id: Mapped[int] = mapped_column(BigInteger)
    alarm: Mapped[dict[str, Any]] = mapped_column(JSON)


class StoredAlarm(Base):
    """The current state of each alarm, per (device, alarm id): the last event's alarm."""

    __tablename__ = "alarms"
    __table_args__ = (
        UniqueConstraint("device_id", "alarm_id", name="uq_alarms_device_alarm"),
        Index("ix_alarms_device_state", "device_id", "state"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"))
    alarm_id: Mapped[int] = mapped_column(BigInteger)
    state: Mapped[str] = mapped_column(String(32))
    severity: Mapped[str] = mapped_column(String(16))
    updated_ts: Mapped[float] = mapped_column(Float)
    """Device time of the event that set this state."""
    alarm: Mapped[dict[str, Any]] = mapped_column(JSON)
    """AlarmRecord."""


# --- model releases (migration 0002) -------------------------------------------------


class DeviceGroupMember(Base):
    """A device in a named group (canary groups of staged rollouts)."""

    __tablename__ = "device_group_members"
    __table_args__ = (
        UniqueConstraint("group_name", "device_id", name="uq_device_group_members_group_device"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    group_name: Mapped[str] = mapped_column(String(64))
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"))


class Release(Base):
    """A signed model bundle released to one device or the fleet, with its rollout plan."""

    __tablename__ = "releases"
    __table_args__ = (
        UniqueConstraint("model_name", "version", name="uq_releases_model_version"),
        Index("ix_releases_state", "state"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_name: Mapped[str] = mapped_column(String(128))
    version: Mapped[str] = mapped_column(String(64))
    bundle_sha256: Mapped[str] = mapped_column(String(64), index=True)
    """Of the stored tar archive (``BundleStore``)."""
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[float] = mapped_column(Float)
    target_device: Mapped[str | None] = mapped_column(String(64))
    """One device; None: the fleet."""
    canary_group: Mapped[str | None] = mapped_column(String(64))
    canary_percent: Mapped[int | None] = mapped_column(Integer)
    stages: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    """The rollout plan, e.g. [{"group": "canary"}, {"percent": 100}]."""
    stage: Mapped[int] = mapped_column(Integer, default=0)
    """Index into stages of the stage being rolled out."""
    state: Mapped[str] = mapped_column(String(16))
    """ReleaseState."""
    reason: Mapped[str | None] = mapped_column(String(1024))
    """Why the release stopped."""
    updated_at: Mapped[float] = mapped_column(Float)
    report_path: Mapped[str | None] = mapped_column(String(1024))
    """The training report folder (server side), served read-only to admins."""
    sample_period_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    """The bundle's input.sample_period_s: devices whose channels cannot feed a model at
    that period are skipped by the rollout. None: a scale-free model."""
    kind: Mapped[str] = mapped_column(String(16), server_default="model")
    """ReleaseKind: "model" (a per-channel forecaster, offered as desired.model) or
    "twin" (a bundle with a twin spec, offered as desired.twin). Migration 0005; rows
    from before it are models."""


class ReleaseAssignment(Base):
    """A release offered to one device, and what became of it."""

    __tablename__ = "release_assignments"
    __table_args__ = (
        UniqueConstraint("release_id", "device_id", name="uq_release_assignments_release_device"),
        Index("ix_release_assignments_device", "device_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    release_id: Mapped[int] = mapped_column(ForeignKey("releases.id", ondelete="CASCADE"))
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"))
    stage: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    """AssignmentStatus."""
    reason: Mapped[str | None] = mapped_column(String(1024))
    ts: Mapped[float] = mapped_column(Float)
    """Server time of the last status change."""
    previous_model: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    """The device's desired {model_version, model} (a twin release: {twin_version,
    twin}) before this offer: restored when the device marks the release bad or the
    release stops before it installed."""


class ReleaseBundle(Base):
    """A release bundle archive kept in the database ([releases] store = "database"), so
    every replica can serve it; replicas cache it in their own folder by sha256."""

    __tablename__ = "release_bundles"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    """Of the archive."""
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    archive: Mapped[bytes] = mapped_column(LargeBinary)
    """The deterministic tar (``cloud_sync.releases.store.archive_bytes``)."""
    created_at: Mapped[float] = mapped_column(Float)


class Notification(Base):
    """One condition worth telling someone (a device gone silent, a fleet alarm, a
    stopped rollout), notified once when raised and once when it clears."""

    __tablename__ = "notifications"

    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    """What the condition is about, e.g. ``device_stale:pump-1``; unique while it lasts."""
    kind: Mapped[str] = mapped_column(String(32))
    """device_stale, fleet_alarm, rollout_stopped."""
    raised_at: Mapped[float] = mapped_column(Float)
    cleared_at: Mapped[float | None] = mapped_column(Float)
    """None while the condition holds."""
    detail: Mapped[dict[str, Any]] = mapped_column(JSON)


class NotificationDelivery(Base):
    """One webhook call still to make or made (an outbox: forgotten only when the
    receiver answered 2xx), with the idempotency key a retry repeats."""

    __tablename__ = "notification_deliveries"
    __table_args__ = (
        UniqueConstraint("idempotency_key", "url", name="uq_notification_deliveries_key_url"),
        Index("ix_notification_deliveries_due", "delivered_at", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(64))
    url: Mapped[str] = mapped_column(String(2048))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[float] = mapped_column(Float)
    delivered_at: Mapped[float | None] = mapped_column(Float)
    last_error: Mapped[str | None] = mapped_column(String(1024))
