"""releases.kind: a release is a model (desired.model) or a twin (desired.twin)

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Every release before this migration was a model: twins could not be published.
    with op.batch_alter_table("releases") as batch:
        batch.add_column(
            sa.Column("kind", sa.String(length=16), nullable=False, server_default="model")
        )


def downgrade() -> None:
    with op.batch_alter_table("releases") as batch:
        batch.drop_column("kind")
