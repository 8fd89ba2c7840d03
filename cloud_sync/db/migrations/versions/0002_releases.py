"""model releases: releases, per-device assignments, device groups

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "device_group_members",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("group_name", sa.String(length=64), nullable=False),
        sa.Column("device_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["device_id"],
            ["devices.id"],
            name=op.f("fk_device_group_members_device_id_devices"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_device_group_members")),
        sa.UniqueConstraint("group_name", "device_id", name="uq_device_group_members_group_device"),
    )
    op.create_table(
        "releases",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("model_name", sa.String(length=128), nullable=False),
        sa.Column("version", sa.String(length=64), nullable=False),
        sa.Column("bundle_sha256", sa.String(length=64), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("target_device", sa.String(length=64), nullable=True),
        sa.Column("canary_group", sa.String(length=64), nullable=True),
        sa.Column("canary_percent", sa.Integer(), nullable=True),
        sa.Column("stages", sa.JSON(), nullable=False),
        sa.Column("stage", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=1024), nullable=True),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.Column("report_path", sa.String(length=1024), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_releases")),
        sa.UniqueConstraint("model_name", "version", name="uq_releases_model_version"),
    )
    op.create_index("ix_releases_state", "releases", ["state"], unique=False)
    op.create_index(op.f("ix_releases_bundle_sha256"), "releases", ["bundle_sha256"], unique=False)
    op.create_table(
        "release_assignments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("release_id", sa.Integer(), nullable=False),
        sa.Column("device_id", sa.Integer(), nullable=False),
        sa.Column("stage", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=1024), nullable=True),
        sa.Column("ts", sa.Float(), nullable=False),
        sa.Column("previous_model", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(
            ["device_id"],
            ["devices.id"],
            name=op.f("fk_release_assignments_device_id_devices"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["release_id"],
            ["releases.id"],
            name=op.f("fk_release_assignments_release_id_releases"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_release_assignments")),
        sa.UniqueConstraint(
            "release_id", "device_id", name="uq_release_assignments_release_device"
        ),
    )
    op.create_index(
        "ix_release_assignments_device", "release_assignments", ["device_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_release_assignments_device", table_name="release_assignments")
    op.drop_table("release_assignments")
    op.drop_index(op.f("ix_releases_bundle_sha256"), table_name="releases")
    op.drop_index("ix_releases_state", table_name="releases")
    op.drop_table("releases")
    op.drop_table("device_group_members")
