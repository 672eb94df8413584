"""The grading task: give every ungraded sample a verdict. Idempotent like sampling: the
work is read from the database and verdicts are upserted on their sample."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any

from sqlalchemy import select

from boundary.api.db import Database, schema
from boundary.api.types import GradeItem, Grader, ProgressFn
from boundary.workers.work.rows import pages, sample_page, write_rows

PAGE = 2000
"""Samples read and graded per page, bounding memory on runs of millions of samples."""


def _ungraded_query(run_id: int, problem_ids: Sequence[int] | None, after_id: int):
    query = (
        select(schema.Sample.id, schema.Sample.run_id, schema.Sample.problem_id, schema.Sample.text,
               schema.Problem.answer, schema.Problem.record)
        .join(schema.Problem, schema.Problem.id == schema.Sample.problem_id)
        .outerjoin(schema.Verdict, schema.Verdict.sample_id == schema.Sample.id)
        .where(schema.Verdict.id.is_(None))
    )
    return sample_page(query, run_id, problem_ids, after_id, PAGE)


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
    query = partial(_ungraded_query, run_id, problem_ids)
    return sum(grade_samples(db, grader, page, progress, retry_window_s) for page in pages(db, query, retry_window_s))


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
    return write_rows(db, schema.Verdict, rows, ["sample_id"], retry_window_s)
