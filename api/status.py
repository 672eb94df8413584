"""Progress of runs, read from the database alone: sampled, graded and failed counts,
samples per second over a recent window, and an ETA."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from boundary.api import defaults
from boundary.api.batch_state import failed_problems
from boundary.api.db import schema


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

    @property
    def complete(self) -> bool:
        return self.sampled >= self.expected and self.graded >= self.expected

    @property
    def eta_s(self) -> float | None:
        """Seconds until sampling finishes at the current rate (None: stalled or done)."""
        left = self.expected - self.sampled
        if left <= 0 or self.samples_per_s <= 0:
            return None
        return left / self.samples_per_s

    def to_dict(self) -> dict:
        return {**asdict(self), "complete": self.complete, "eta_s": self.eta_s}


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
    )


def statuses(
    session: Session, run_ids: Sequence[int], window_s: float = defaults.STATUS_RATE_WINDOW_S
) -> list[RunStatus]:
    return [run_status(session, rid, window_s) for rid in run_ids]
