"""Batch state: the rows of queued work in the database (planning a run's batches, claiming,
finishing, failures). A batch delivered twice changes nothing; see docs/fleet.md."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import and_, func, select, update
from sqlalchemy.orm import Session

from boundary.api.db import schema
from boundary.api.queues import grade_queue, sample_queue, score_queue


@dataclass(frozen=True)
class Queued:
    """A batch to publish: its id, its kind (sample or grade) and the queue it goes to."""

    batch_id: int
    kind: str
    queue: str


def _new_batch(
    session: Session, run_id: int, kind: str, queue: str, problem_ids: Sequence[int], scorer_id: int | None = None
) -> Queued:
    now = schema.utcnow()
    row = schema.Batch(run_id=run_id, kind=kind, queue=queue, problem_ids=list(problem_ids), status="queued",
                       attempts=0, created_at=now, updated_at=now, scorer_id=scorer_id)
    session.add(row)
    session.flush()
    return Queued(row.id, kind, queue)


def missing_work(session: Session, run_id: int) -> tuple[list[int], list[int]]:
    """Problems of the run still missing samples, and problems whose samples are all there
    but not all graded."""
    run = session.get(schema.Run, run_id)
    problem_ids = list(
        session.scalars(
            select(schema.RunProblem.problem_id).where(schema.RunProblem.run_id == run_id).order_by(
                schema.RunProblem.problem_id
            )
        )
    )
    sampled = dict(
        session.execute(
            select(schema.Sample.problem_id, func.count(schema.Sample.id))
            .where(schema.Sample.run_id == run_id, schema.Sample.sample_index < run.n)
            .group_by(schema.Sample.problem_id)
        ).all()
    )
    ungraded = set(
        session.scalars(
            select(schema.Sample.problem_id)
            .outerjoin(schema.Verdict, schema.Verdict.sample_id == schema.Sample.id)
            .where(schema.Sample.run_id == run_id, schema.Verdict.id.is_(None))
            .distinct()
        )
    )
    to_sample = [p for p in problem_ids if sampled.get(p, 0) < run.n]
    to_grade = [p for p in problem_ids if sampled.get(p, 0) >= run.n and p in ungraded]
    return to_sample, to_grade


def plan_run(session: Session, run_id: int, batch_samples: int) -> list[Queued]:
    """Batches for everything a run still misses: sampling for problems short of n samples,
    grading for problems fully sampled but not fully graded."""
    run = session.get(schema.Run, run_id)
    model = session.get(schema.Model, run.model_id)
    bench = session.get(schema.Benchmark, run.benchmark_id)
    to_sample, to_grade = missing_work(session, run_id)
    per_batch = max(1, batch_samples // run.n)
    queued = [
        _new_batch(session, run_id, "sample", sample_queue(model.name), to_sample[i : i + per_batch])
        for i in range(0, len(to_sample), per_batch)
    ]
    queued += [
        _new_batch(session, run_id, "grade", grade_queue(bench.kind), to_grade[i : i + per_batch])
        for i in range(0, len(to_grade), per_batch)
    ]
    return queued


def plan_scores(session: Session, run_id: int, scorer_id: int, batch_samples: int) -> list[Queued]:
    """Score batches for the problems of a run with samples the scorer has not scored."""
    run = session.get(schema.Run, run_id)
    scorer = session.get(schema.Model, scorer_id)
    problems = sorted(set(session.scalars(
        select(schema.Sample.problem_id)
        .outerjoin(schema.Score, and_(schema.Score.sample_id == schema.Sample.id, schema.Score.scorer_id == scorer_id))
        .where(schema.Sample.run_id == run_id, schema.Score.id.is_(None))
        .distinct()
    )))
    per_batch = max(1, batch_samples // run.n)
    return [
        _new_batch(session, run_id, "score", score_queue(scorer.name), problems[i : i + per_batch], scorer_id)
        for i in range(0, len(problems), per_batch)
    ]


def grade_batch_for(session: Session, sample_batch_id: int) -> Queued:
    """The grading batch that follows a finished sampling batch, on the same problems."""
    batch = session.get(schema.Batch, sample_batch_id)
    run = session.get(schema.Run, batch.run_id)
    bench = session.get(schema.Benchmark, run.benchmark_id)
    return _new_batch(session, batch.run_id, "grade", grade_queue(bench.kind), batch.problem_ids)


def unpublished_grade_batches(session: Session, sample_batch_id: int) -> list[Queued]:
    """The grading batch of a finished sampling batch if it was never delivered.

    A worker that dies after recording its sampling batch done, but before publishing the
    grading batch that follows, leaves that batch queued in the database with no message; the
    sampling message, never acknowledged, comes back, and this finds what to publish again. A
    second message for a batch that was delivered meanwhile changes nothing (claim ignores a
    batch that is done; two racing deliveries write the same rows)."""
    batch = session.get(schema.Batch, sample_batch_id)
    if batch is None or batch.kind != "sample" or batch.status != "done":
        return []
    rows = session.scalars(
        select(schema.Batch).where(
            schema.Batch.run_id == batch.run_id, schema.Batch.kind == "grade", schema.Batch.status == "queued",
            schema.Batch.attempts == 0, schema.Batch.id > batch.id,
        ).order_by(schema.Batch.id)
    ).all()
    return [Queued(r.id, r.kind, r.queue) for r in rows if list(r.problem_ids) == list(batch.problem_ids)][:1]


@dataclass(frozen=True)
class Claim:
    batch_id: int
    run_id: int
    kind: str
    problem_ids: list[int]
    attempts: int
    scorer_id: int | None = None


def claim(session: Session, batch_id: int, max_attempts: int) -> Claim | None:
    """Start a delivery of ``batch_id``. None when there is nothing to do: the batch is done,
    failed, unknown, or has now been delivered more than ``max_attempts`` times (it is then
    marked failed)."""
    now = schema.utcnow()
    session.execute(
        update(schema.Batch)
        .where(schema.Batch.id == batch_id, schema.Batch.status.in_(("queued", "running")))
        .values(attempts=schema.Batch.attempts + 1, status="running", updated_at=now)
    )
    batch = session.get(schema.Batch, batch_id, populate_existing=True)
    if batch is None or batch.status not in ("running",):
        return None
    if batch.attempts > max_attempts:
        reason = batch.error or "its worker died during every delivery (killed, out of memory, or crashed)"
        batch.status = "failed"
        batch.error = f"gave up after {max_attempts} deliveries: {reason}"
        return None
    return Claim(batch.id, batch.run_id, batch.kind, list(batch.problem_ids), batch.attempts, batch.scorer_id)


def finish(session: Session, batch_id: int) -> None:
    session.execute(
        update(schema.Batch)
        .where(schema.Batch.id == batch_id)
        .values(status="done", error=None, updated_at=schema.utcnow())
    )


def record_error(session: Session, batch_id: int, error: str, final: bool) -> None:
    """Note why a delivery failed; ``final`` marks the batch failed, else it waits for a retry."""
    session.execute(
        update(schema.Batch)
        .where(schema.Batch.id == batch_id)
        .values(status="failed" if final else "queued", error=error[:2000], updated_at=schema.utcnow())
    )


def failed_problems(session: Session, run_id: int) -> dict[int, str]:
    """Problems of a run whose most recent batch failed, with the reason (a later batch on the
    same problem, from ``resume``, clears it)."""
    out: dict[int, str] = {}
    rows = session.execute(
        select(schema.Batch.status, schema.Batch.error, schema.Batch.problem_ids)
        .where(schema.Batch.run_id == run_id)
        .order_by(schema.Batch.id)
    ).all()
    for status, error, problem_ids in rows:
        for pid in problem_ids:
            if status == "failed":
                out[pid] = error or "failed"
            else:
                out.pop(pid, None)
    return out
