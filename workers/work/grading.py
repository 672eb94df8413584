"""The grading task: give every ungraded sample a verdict. Idempotent like sampling: the
work is read from the database and verdicts are upserted on their sample."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select

from boundary.api.db import Database, schema
from boundary.api.db.retry import with_retry
from boundary.api.db.upsert import insert_ignore
from boundary.api.types import GradeItem, Grader, ProgressFn

PAGE = 2000
"""Samples read and graded per page, bounding memory on runs of millions of samples."""


def _ungraded_query(run_id: int, problem_ids: Sequence[int] | None, after_id: int):
    query = (
        select(schema.Sample.id, schema.Sample.run_id, schema.Sample.problem_id, schema.Sample.text, schema.Problem.answer,
               schema.Problem.record)
        .join(schema.Problem, schema.Problem.id == schema.Sample.problem_id)
        .outerjoin(schema.Verdict, schema.Verdict.sample_id == schema.Sample.id)
        .where(schema.Sample.run_id == run_id, schema.Verdict.id.is_(None), schema.Sample.id > after_id)
        .order_by(schema.Sample.id)
        .limit(PAGE)
    )
    if problem_ids is not None:
        query = query.where(schema.Sample.problem_id.in_(list(problem_ids)))
    return query


def grade_run(
    db: Database,
    grader: Grader,
    run_id: int,
    problem_ids: Sequence[int] | None = None,
    progress: ProgressFn | None = None,
    retry_window_s: float = 0.0,
) -> int:
    """Grade the ungraded samples of ``run_id`` (optionally only of ``problem_ids``);
    returns how many verdicts were written. Database calls are retried for
    ``retry_window_s`` while the database is unreachable."""
    written = 0
    after = 0
    while True:

        def read_page(after: int = after) -> list:
            with db.session() as session:
                return session.execute(_ungraded_query(run_id, problem_ids, after)).all()

        page = with_retry(read_page, retry_window_s)
        if not page:
            return written
        after = page[-1].id
        written += grade_samples(db, grader, page, progress, retry_window_s)


def grade_samples(
    db: Database,
    grader: Grader,
    samples: Sequence[Any],
    progress: ProgressFn | None = None,
    retry_window_s: float = 0.0,
) -> int:
    """Grade samples (rows with id, run_id, problem_id, text, answer, record) and store the
    verdicts."""
    where = {r.id: (r.run_id, r.problem_id) for r in samples}
    items = [GradeItem(key=r.id, reference=r.answer or "", completion=r.text, record=r.record or {}) for r in samples]
    now = schema.utcnow()
    rows = [
        {
            "sample_id": v.key,
            "run_id": where[v.key][0],
            "problem_id": where[v.key][1],
            "correct": bool(v.correct),
            "extracted_answer": v.extracted,
            "grader": grader.name,
            "grader_version": grader.version,
            "error": v.error,
            "duration_s": v.duration_s,
            "details": v.details,
            "created_at": now,
        }
        for v in grader.grade(items, progress)
    ]
    def write() -> None:
        with db.session() as session:
            insert_ignore(session, schema.Verdict, rows, ["sample_id"])

    with_retry(write, retry_window_s)
    return len(rows)
