"""Samplers: a run's sampler and its resolved options join its identity (existing runs are
``plain`` with no options), and every sample records what drawing it cost (tokens decoded,
context tokens sent, engine calls) and its sampler's diagnostics. Existing samples were one
engine call each: their decoded tokens are their own.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_IDENTITY = ["model_id", "benchmark_id", "temperature", "top_p", "max_tokens", "seed", "prompt_template", "engine"]


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("sampler", sa.String(30), nullable=False, server_default="plain"))
        batch.add_column(sa.Column("sampler_options", sa.Text(), nullable=False, server_default="{}"))
        batch.drop_constraint("uq_runs_identity", type_="unique")
        batch.create_unique_constraint("uq_runs_identity", [*OLD_IDENTITY, "sampler", "sampler_options"])
    with op.batch_alter_table("samples") as batch:
        batch.add_column(sa.Column("decoded_tokens", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("prefill_tokens", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("engine_calls", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("sampler_stats", sa.JSON(), nullable=True))
    op.execute("UPDATE samples SET decoded_tokens = num_tokens, engine_calls = 1")


def downgrade() -> None:
    with op.batch_alter_table("samples") as batch:
        batch.drop_column("sampler_stats")
        batch.drop_column("engine_calls")
        batch.drop_column("prefill_tokens")
        batch.drop_column("decoded_tokens")
    op.execute("DELETE FROM runs WHERE sampler <> 'plain'")
    with op.batch_alter_table("runs") as batch:
        batch.drop_constraint("uq_runs_identity", type_="unique")
        batch.create_unique_constraint("uq_runs_identity", OLD_IDENTITY)
        batch.drop_column("sampler_options")
        batch.drop_column("sampler")
