"""The database schema: SQLAlchemy 2 typed models, identical on SQLite and PostgreSQL.

Natural keys carry unique constraints so that every write can be an idempotent upsert:
a sample is unique on (run, problem, sample index), a verdict on its sample.
Every change here needs a migration in ``migrations/versions``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from boundary.api.types import ROLES

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


_ROLE_CHECK = "role IN (" + ", ".join(f"'{r}'" for r in ROLES) + ")"


class Model(Base):
    """A model under study: where it comes from and its role in the comparison."""

    __tablename__ = "models"
    __table_args__ = (CheckConstraint(_ROLE_CHECK, name="role"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    path: Mapped[str] = mapped_column(Text)
    source: Mapped[str | None] = mapped_column(Text)
    """What resolves to the weights again (an alias, a folder, a hub id): how a worker loads it."""
    role: Mapped[str] = mapped_column(String(20))
    family: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Benchmark(Base):
    """One version of a benchmark: a changed data file is a new row, never mixed with the old."""

    __tablename__ = "benchmarks"
    __table_args__ = (
        UniqueConstraint("name", "content_hash"),
        UniqueConstraint("name", "version"),
        CheckConstraint("kind IN ('math', 'code')", name="kind"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    version: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(10))
    source: Mapped[str] = mapped_column(Text)
    content_hash: Mapped[str] = mapped_column(String(64))
    num_problems: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Problem(Base):
    """A benchmark item; ``record`` keeps the original row (code tests, metadata)."""

    __tablename__ = "problems"
    __table_args__ = (UniqueConstraint("benchmark_id", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    benchmark_id: Mapped[int] = mapped_column(ForeignKey("benchmarks.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    key: Mapped[str] = mapped_column(String(200))
    question: Mapped[str] = mapped_column(Text)
    answer: Mapped[str | None] = mapped_column(Text)
    record: Mapped[dict[str, Any]] = mapped_column(JSON)
    content_hash: Mapped[str] = mapped_column(String(64))


class Run(Base):
    """Model x benchmark version x sampling parameters x prompt template x engine x sampler.

    ``n`` is the number of samples per problem asked for so far; asking for more tops the
    run up rather than creating a new one.
    """

    __tablename__ = "runs"
    __table_args__ = (
        UniqueConstraint(
            "model_id",
            "benchmark_id",
            "temperature",
            "top_p",
            "max_tokens",
            "seed",
            "prompt_template",
            "engine",
            "sampler",
            "sampler_options",
            name="uq_runs_identity",
        ),
        CheckConstraint("n >= 1", name="n_positive"),
        CheckConstraint("temperature >= 0", name="temperature_nonnegative"),
        CheckConstraint("top_p > 0 AND top_p <= 1", name="top_p_range"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id"))
    benchmark_id: Mapped[int] = mapped_column(ForeignKey("benchmarks.id"))
    temperature: Mapped[float] = mapped_column(Float)
    top_p: Mapped[float] = mapped_column(Float)
    max_tokens: Mapped[int] = mapped_column(Integer)
    n: Mapped[int] = mapped_column(Integer)
    seed: Mapped[int] = mapped_column(Integer)
    prompt_template: Mapped[str] = mapped_column(String(100))
    engine: Mapped[str] = mapped_column(String(50))
    engine_options: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    sampler: Mapped[str] = mapped_column(String(30), default="plain", server_default="plain")
    """How each sample is drawn (boundary.api.samplers): plain, power-mcmc, power-smc."""
    sampler_options: Mapped[str] = mapped_column(Text, default="{}", server_default="{}")
    """The sampler's resolved options as canonical JSON (text, so it can be part of the unique identity)."""
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class RunProblem(Base):
    """A problem selected into a run, with the exact prompt rendered for it and its seed.

    ``prompt`` is empty until rendered: a template that needs the model's chat template is
    rendered by the sampling worker, which has the tokenizer, before its first sample."""

    __tablename__ = "run_problems"

    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    problem_id: Mapped[int] = mapped_column(ForeignKey("problems.id"), primary_key=True)
    prompt: Mapped[str | None] = mapped_column(Text)
    seed: Mapped[int] = mapped_column(Integer)


class Sample(Base):
    """One completion. Unique on (run, problem, sample index): writing it twice is a no-op."""

    __tablename__ = "samples"
    __table_args__ = (
        UniqueConstraint("run_id", "problem_id", "sample_index"),
        CheckConstraint("sample_index >= 0", name="sample_index_nonnegative"),
        Index("ix_samples_run_id_created_at", "run_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    problem_id: Mapped[int] = mapped_column(ForeignKey("problems.id"))
    sample_index: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    num_tokens: Mapped[int] = mapped_column(Integer)
    finish_reason: Mapped[str | None] = mapped_column(String(20))
    cumulative_logprob: Mapped[float | None] = mapped_column(Float)
    decoded_tokens: Mapped[int | None] = mapped_column(Integer)
    """Tokens the engine generated to draw this sample: its own, plus rejected proposals and
    discarded particles under a sampler beyond plain (boundary.api.types.Cost)."""
    prefill_tokens: Mapped[int | None] = mapped_column(Integer)
    """Context tokens (prompt and prefix) sent with its engine calls; None where not counted."""
    engine_calls: Mapped[int | None] = mapped_column(Integer)
    """Sequences asked of the engine for it (a plain sample: 1)."""
    sampler_stats: Mapped[Any | None] = mapped_column(JSON(none_as_null=True))
    """The sampler's diagnostics for this sample (MH acceptance; SMC resamplings, final ESS)."""
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Verdict(Base):
    """The grade of one sample, with the grader that gave it.

    ``run_id`` and ``problem_id`` repeat the sample's, so that the (n, c) counts of pass@k over
    millions of verdicts come from one index-only scan of (run, problem, correct), without a
    join to the samples."""

    __tablename__ = "verdicts"
    __table_args__ = (Index("ix_verdicts_run_id_problem_id_correct", "run_id", "problem_id", "correct"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    sample_id: Mapped[int] = mapped_column(ForeignKey("samples.id", ondelete="CASCADE"), unique=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    problem_id: Mapped[int] = mapped_column(ForeignKey("problems.id"))
    correct: Mapped[bool] = mapped_column(Boolean)
    extracted_answer: Mapped[str | None] = mapped_column(Text)
    grader: Mapped[str] = mapped_column(String(100))
    grader_version: Mapped[str] = mapped_column(String(50))
    error: Mapped[str | None] = mapped_column(Text)
    duration_s: Mapped[float] = mapped_column(Float)
    details: Mapped[Any | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)



class Experiment(Base):
    """A named set of runs submitted together; ``spec`` is the experiment file as parsed."""

    __tablename__ = "experiments"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    spec_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ExperimentRun(Base):
    __tablename__ = "experiment_runs"

    experiment_id: Mapped[int] = mapped_column(ForeignKey("experiments.id", ondelete="CASCADE"), primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)


BATCH_KINDS = ("sample", "grade", "score")
BATCH_STATUSES = ("queued", "running", "done", "failed")


class Batch(Base):
    """One queue message's worth of work: sampling or grading some problems of a run.

    The queue only delivers batch ids; this row counts deliveries, so a batch that kills its
    worker every time is marked failed after a bounded number of attempts instead of being
    redelivered forever. A batch being worked on (``running``) is leased: its worker renews
    ``lease_expires_at`` from a heartbeat, and a batch whose lease expired is queued again by
    any live worker or the autoscaler (docs/fleet.md)."""

    __tablename__ = "batches"
    __table_args__ = (
        CheckConstraint("kind IN ('sample', 'grade', 'score')", name="kind"),
        CheckConstraint("status IN ('queued', 'running', 'done', 'failed')", name="status"),
        Index("ix_batches_run_id_status", "run_id", "status"),
        Index("ix_batches_status_lease_expires_at", "status", "lease_expires_at"),
        Index("ix_batches_status_updated_at", "status", "updated_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(10))
    queue: Mapped[str] = mapped_column(String(250))
    problem_ids: Mapped[list[int]] = mapped_column(JSON)
    scorer_id: Mapped[int | None] = mapped_column(ForeignKey("models.id"))
    """Score batches: the model that scores the run's samples."""
    status: Mapped[str] = mapped_column(String(10), default="queued")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    lease_owner: Mapped[str | None] = mapped_column(String(250))
    """Running batches: the worker process holding the batch (``host:pid``)."""
    lease_tag: Mapped[str | None] = mapped_column(String(64))
    """Running batches: the broker's delivery tag of the message being worked on."""
    lease_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    """Running batches: when the lease runs out unless the holder's heartbeat renews it."""
    lease_lost_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    """When a reaper last took the batch back from a worker whose lease ran out."""
    progress: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    """The rows (samples, verdicts or scores) of the batch stored when it was last claimed: a
    delivery that stored more made progress, and does not count against the batch."""


class Score(Base):
    """A sample's log-likelihood under a model (possibly not the one that drew it): the sum of
    the completion tokens' log-probabilities, from which its perplexity follows."""

    __tablename__ = "scores"
    __table_args__ = (UniqueConstraint("sample_id", "scorer_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    sample_id: Mapped[int] = mapped_column(ForeignKey("samples.id", ondelete="CASCADE"))
    scorer_id: Mapped[int] = mapped_column(ForeignKey("models.id"))
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    sum_logprob: Mapped[float] = mapped_column(Float)
    num_tokens: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
