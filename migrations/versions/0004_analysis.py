"""Analyses: verdicts carry their sample's run and problem (pass@k in one scan), scores of
samples under other models (perplexity), and score batches.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("verdicts") as batch:
        batch.add_column(sa.Column("run_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("problem_id", sa.Integer(), nullable=True))
    op.execute(
        "UPDATE verdicts SET run_id = (SELECT s.run_id FROM samples s WHERE s.id = verdicts.sample_id), "
        "problem_id = (SELECT s.problem_id FROM samples s WHERE s.id = verdicts.sample_id)"
    )
    with op.batch_alter_table("verdicts") as batch:
        batch.alter_column("run_id", existing_type=sa.Integer(), nullable=False)
        batch.alter_column("problem_id", existing_type=sa.Integer(), nullable=False)
        batch.create_foreign_key(op.f("fk_verdicts_run_id_runs"), "runs", ["run_id"], ["id"], ondelete="CASCADE")
        batch.create_foreign_key(op.f("fk_verdicts_problem_id_problems"), "problems", ["problem_id"], ["id"])
        batch.create_index("ix_verdicts_run_id_problem_id_correct", ["run_id", "problem_id", "correct"])
    with op.batch_alter_table("batches") as batch:
        batch.add_column(sa.Column("scorer_id", sa.Integer(), nullable=True))
        batch.create_foreign_key(op.f("fk_batches_scorer_id_models"), "models", ["scorer_id"], ["id"])
        batch.drop_constraint(op.f("ck_batches_kind"), type_="check")
        batch.create_check_constraint(op.f("ck_batches_kind"), "kind IN ('sample', 'grade', 'score')")
    op.create_table(
        "scores",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sample_id", sa.Integer(), nullable=False),
        sa.Column("scorer_id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("sum_logprob", sa.Float(), nullable=False),
        sa.Column("num_tokens", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["sample_id"], ["samples.id"], name=op.f("fk_scores_sample_id_samples"), ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(["scorer_id"], ["models.id"], name=op.f("fk_scores_scorer_id_models")),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name=op.f("fk_scores_run_id_runs"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_scores")),
        sa.UniqueConstraint("sample_id", "scorer_id", name=op.f("uq_scores_sample_id_scorer_id")),
    )


def downgrade() -> None:
    op.drop_table("scores")
    with op.batch_alter_table("batches") as batch:
        batch.drop_constraint(op.f("ck_batches_kind"), type_="check")
        batch.create_check_constraint(op.f("ck_batches_kind"), "kind IN ('sample', 'grade')")
        batch.drop_constraint(op.f("fk_batches_scorer_id_models"), type_="foreignkey")
        batch.drop_column("scorer_id")
    with op.batch_alter_table("verdicts") as batch:
        batch.drop_index("ix_verdicts_run_id_problem_id_correct")
        batch.drop_constraint(op.f("fk_verdicts_problem_id_problems"), type_="foreignkey")
        batch.drop_constraint(op.f("fk_verdicts_run_id_runs"), type_="foreignkey")
        batch.drop_column("problem_id")
        batch.drop_column("run_id")
