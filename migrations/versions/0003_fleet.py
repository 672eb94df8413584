"""The fleet: experiments, batches (delivery counts and failures), model sources for workers,
prompts rendered by sampling workers, and an index for sampling rates.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("models") as batch:
        batch.add_column(sa.Column("source", sa.Text(), nullable=True))
    with op.batch_alter_table("run_problems") as batch:
        batch.alter_column("prompt", existing_type=sa.Text(), nullable=True)
    op.create_index("ix_samples_run_id_created_at", "samples", ["run_id", "created_at"])
    op.create_table(
        "experiments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("spec_hash", sa.String(64), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_experiments")),
        sa.UniqueConstraint("name", name=op.f("uq_experiments_name")),
    )
    op.create_table(
        "experiment_runs",
        sa.Column("experiment_id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["experiment_id"], ["experiments.id"], name=op.f("fk_experiment_runs_experiment_id_experiments"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name=op.f("fk_experiment_runs_run_id_runs"), ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("experiment_id", "run_id", name=op.f("pk_experiment_runs")),
    )
    op.create_table(
        "batches",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(10), nullable=False),
        sa.Column("queue", sa.String(250), nullable=False),
        sa.Column("problem_ids", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
        sa.CheckConstraint("kind IN ('sample', 'grade')", name=op.f("ck_batches_kind")),
        sa.CheckConstraint("status IN ('queued', 'running', 'done', 'failed')", name=op.f("ck_batches_status")),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name=op.f("fk_batches_run_id_runs"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_batches")),
    )
    op.create_index("ix_batches_run_id_status", "batches", ["run_id", "status"])


def downgrade() -> None:
    op.drop_index("ix_batches_run_id_status", table_name="batches")
    op.drop_table("batches")
    op.drop_table("experiment_runs")
    op.drop_table("experiments")
    op.drop_index("ix_samples_run_id_created_at", table_name="samples")
    with op.batch_alter_table("run_problems") as batch:
        batch.alter_column("prompt", existing_type=sa.Text(), nullable=False)
    with op.batch_alter_table("models") as batch:
        batch.drop_column("source")
