"""Leases: a running batch names its worker process and the message it works on, and expires
unless that worker's heartbeat renews it; when a batch was last taken back from a dead worker,
and the rows it had when last claimed (progress);
indexes to find expired leases and batches queued for long.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
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
    with op.batch_alter_table("batches") as batch:
        batch.add_column(sa.Column("lease_owner", sa.String(250), nullable=True))
        batch.add_column(sa.Column("lease_tag", sa.String(64), nullable=True))
        batch.add_column(sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("lease_lost_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("progress", sa.Integer(), nullable=False, server_default="0"))
        batch.create_index("ix_batches_status_lease_expires_at", ["status", "lease_expires_at"])
        batch.create_index("ix_batches_status_updated_at", ["status", "updated_at"])


def downgrade() -> None:
    with op.batch_alter_table("batches") as batch:
        batch.drop_index("ix_batches_status_updated_at")
        batch.drop_index("ix_batches_status_lease_expires_at")
        batch.drop_column("progress")
        batch.drop_column("lease_lost_at")
        batch.drop_column("lease_expires_at")
        batch.drop_column("lease_tag")
        batch.drop_column("lease_owner")
