"""Progress of runs, read from the database alone: sampled, graded and failed counts,
samples per second over a recent window, an ETA, and the run's batches per queue: waiting,
held by live workers, and held by dead ones (their lease ran out; a reaper queues them again)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import timedelta

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from boundary.api import defaults
from boundary.api.batch_state import failed_problems
from boundary.api.db import schema
from boundary.api.samplers import stored_sampler


@dataclass(frozen=True)
class QueueBatches:
    """A run's batches on one queue that are not finished."""

    waiting: int = 0
    held: int = 0
    """Being worked on by a worker whose lease is live."""
    held_by_dead: int = 0
    """Marked running, but the lease ran out: the worker died or froze."""


@dataclass(frozen=True)
class RunStatus:
    run_id: int
    model: str
    role: str
    benchmark: str
    temperature: float
    template: str
    n: int
    problems: int
    expected: int
    sampled: int
    graded: int
    correct: int
    failed_problems: int
    samples_per_s: float
    failures: list[str] = field(default_factory=list)
    batches: dict[str, QueueBatches] = field(default_factory=dict)
    """Per queue; empty for a run sampled without a broker."""
    planned: bool = False
    """Whether the run was ever queued in batches (submitted to a fleet)."""
    sampler: str = "plain"
    """How its samples are drawn: the sampler and the options it changed (SamplerSpec.label)."""

    @property
    def complete(self) -> bool:
        return self.sampled >= self.expected and self.graded >= self.expected

    @property
    def state(self) -> str:
        """complete, failing, running (a live worker holds a batch, or, for a run without
        batches, samples arrive), stalled (only dead workers hold its batches) or waiting."""
        held = sum(b.held for b in self.batches.values())
        if self.complete:
            return "complete"
        if self.failed_problems:
            return "failing"
        if held or (not self.planned and self.samples_per_s):
            return "running"
        if any(b.held_by_dead for b in self.batches.values()):
            return "stalled"
        return "waiting"

    @property
    def eta_s(self) -> float | None:
        """Seconds until sampling finishes at the current rate (None: stalled or done)."""
        left = self.expected - self.sampled
        if left <= 0 or self.samples_per_s <= 0:
            return None
        return left / self.samples_per_s

    def to_dict(self) -> dict:
        return {**asdict(self), "complete": self.complete, "eta_s": self.eta_s, "state": self.state}


def queue_batches(session: Session, run_id: int) -> tuple[dict[str, QueueBatches], bool]:
    """The run's unfinished batches per queue, and whether it has any batch at all."""
    now = schema.utcnow()
    B = schema.Batch
    live = case((B.lease_expires_at > now, 1), else_=0)
    rows = session.execute(
        select(B.queue, B.status, live, func.count()).where(B.run_id == run_id).group_by(B.queue, B.status, live)
    ).all()
    counts: dict[str, dict[str, int]] = {}
    for queue, status, is_live, count in rows:
        if status == "queued":
            key = "waiting"
        elif status == "running":
            key = "held" if is_live else "held_by_dead"
        else:
            continue
        counts.setdefault(queue, {})
        counts[queue][key] = counts[queue].get(key, 0) + count
    return {q: QueueBatches(**c) for q, c in sorted(counts.items())}, bool(rows)


def run_status(session: Session, run_id: int, window_s: float = defaults.STATUS_RATE_WINDOW_S) -> RunStatus:
    run, model, bench = session.execute(
        select(schema.Run, schema.Model, schema.Benchmark)
        .join(schema.Model, schema.Model.id == schema.Run.model_id)
        .join(schema.Benchmark, schema.Benchmark.id == schema.Run.benchmark_id)
        .where(schema.Run.id == run_id)
    ).one()
    problems = session.scalar(select(func.count()).where(schema.RunProblem.run_id == run_id)) or 0
    in_run = (schema.Sample.run_id == run_id, schema.Sample.sample_index < run.n)
    sampled = session.scalar(select(func.count(schema.Sample.id)).where(*in_run)) or 0
    graded, correct = session.execute(
        select(func.count(schema.Verdict.id), func.count(schema.Verdict.id).filter(schema.Verdict.correct))
        .join(schema.Sample, schema.Sample.id == schema.Verdict.sample_id)
        .where(*in_run)
    ).one()
    since = schema.utcnow() - timedelta(seconds=window_s)
    recent = session.scalar(select(func.count(schema.Sample.id)).where(*in_run, schema.Sample.created_at >= since)) or 0
    failed = failed_problems(session, run_id)
    batches, planned = queue_batches(session, run_id)
    return RunStatus(
        run_id=run.id,
        model=model.name,
        role=model.role,
        benchmark=f"{bench.name} v{bench.version}",
        temperature=run.temperature,
        template=run.prompt_template,
        n=run.n,
        problems=problems,
        expected=problems * run.n,
        sampled=sampled,
        graded=graded or 0,
        correct=correct or 0,
        failed_problems=len(failed),
        samples_per_s=recent / window_s,
        failures=sorted(set(failed.values()))[:5],
        batches=batches,
        planned=planned,
        sampler=stored_sampler(run.sampler, run.sampler_options).label(),
    )


def statuses(
    session: Session, run_ids: Sequence[int], window_s: float = defaults.STATUS_RATE_WINDOW_S
) -> list[RunStatus]:
    return [run_status(session, rid, window_s) for rid in run_ids]
