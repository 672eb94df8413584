"""Running one batch, as a worker does it: claim the delivery, do the work through the same
task functions as the embedded mode, record the outcome. Plain functions, no Celery: the
Celery tasks in ``boundary.workers.tasks`` only call these and translate ``Retry``."""

from __future__ import annotations

import logging
from collections.abc import Callable

from boundary.api import defaults
from boundary.api.batches import Claim, Queued, claim, finish, grade_batch_for, record_error, unpublished_grade_batches
from boundary.api.db import Database, schema
from boundary.api.db.retry import is_transient, with_retry
from boundary.api.types import Engine, Grader
from boundary.workers.grading import grade_run
from boundary.workers.sampling import sample_problems
from boundary.workers.scoring import score_run

log = logging.getLogger("boundary.worker")


class Retry(Exception):
    """Deliver this batch again after ``countdown`` seconds."""

    def __init__(self, countdown: float, reason: str):
        super().__init__(reason)
        self.countdown = countdown


def _backoff(attempt: int) -> float:
    return min(defaults.RETRY_BACKOFF_MAX_S, 2.0 ** max(0, attempt - 1))


def _claim(db: Database, batch_id: int, max_attempts: int, window_s: float) -> Claim | None:
    def attempt() -> Claim | None:
        with db.session() as session:
            return claim(session, batch_id, max_attempts)

    return with_retry(attempt, window_s)


def _failed(db: Database, c: Claim, exc: BaseException, max_attempts: int, window_s: float) -> None:
    """Record a failed delivery; raise Retry unless that was the last allowed one."""
    final = c.attempts >= max_attempts
    message = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"[:500]

    def note() -> None:
        with db.session() as session:
            record_error(session, c.batch_id, message, final)

    with_retry(note, window_s)
    log.warning("batch %s delivery %s/%s failed: %s", c.batch_id, c.attempts, max_attempts, message)
    if not final:
        raise Retry(_backoff(c.attempts), message)


def run_sample_batch(
    db: Database,
    engine: Callable[[], Engine],
    batch_id: int,
    *,
    model_name: str,
    engine_name: str,
    max_attempts: int = defaults.BATCH_MAX_ATTEMPTS,
    window_s: float = defaults.DB_RETRY_WINDOW_S,
) -> list[Queued]:
    """Sample one batch; returns the grading batch to publish next (none if nothing ran, or
    the one a dead worker drew but never published, when this is a redelivery)."""
    c = _claim(db, batch_id, max_attempts, window_s)
    if c is None:
        def followups() -> list[Queued]:
            with db.session() as session:
                return unpublished_grade_batches(session, batch_id)

        queued = with_retry(followups, window_s)
        if queued:
            log.warning("batch %s was done but its grading batch %s was never published: publishing it",
                        batch_id, queued[0].batch_id)
        return queued
    try:
        with db.session() as session:
            run = session.get(schema.Run, c.run_id)
            model = session.get(schema.Model, run.model_id)
            mismatch = _mismatch(run, model, model_name, engine_name)
        if mismatch:
            with db.session() as session:
                record_error(session, batch_id, mismatch, final=True)
            log.error("batch %s: %s", batch_id, mismatch)
            return []
        drawn = sample_problems(db, engine(), c.run_id, c.problem_ids, retry_window_s=window_s)
    except Exception as exc:
        if is_transient(exc):
            raise
        _failed(db, c, exc, max_attempts, window_s)
        return []

    def done() -> list[Queued]:
        with db.session() as session:
            finish(session, batch_id)
            return [grade_batch_for(session, batch_id)]

    queued = with_retry(done, window_s)
    log.info("batch %s: drew %s samples for %s problems of run %s", batch_id, drawn, len(c.problem_ids), c.run_id)
    return queued


def _mismatch(run: schema.Run, model: schema.Model, model_name: str, engine_name: str) -> str | None:
    if model.name != model_name:
        return f"run {run.id} samples model '{model.name}', but this worker serves '{model_name}'"
    if run.engine != engine_name:
        return f"run {run.id} samples with engine '{run.engine}', but this worker runs '{engine_name}'"
    return None


def run_grade_batch(
    db: Database,
    grader: Callable[[str], Grader],
    batch_id: int,
    *,
    max_attempts: int = defaults.BATCH_MAX_ATTEMPTS,
    window_s: float = defaults.DB_RETRY_WINDOW_S,
) -> int:
    """Grade one batch; returns the number of verdicts written."""
    c = _claim(db, batch_id, max_attempts, window_s)
    if c is None:
        return 0
    try:
        with db.session() as session:
            run = session.get(schema.Run, c.run_id)
            kind = session.get(schema.Benchmark, run.benchmark_id).kind
        written = grade_run(db, grader(kind), c.run_id, c.problem_ids, retry_window_s=window_s)
    except Exception as exc:
        if is_transient(exc):
            raise
        _failed(db, c, exc, max_attempts, window_s)
        return 0

    def done() -> None:
        with db.session() as session:
            finish(session, batch_id)

    with_retry(done, window_s)
    log.info("batch %s: graded %s samples of run %s", batch_id, written, c.run_id)
    return written


def run_score_batch(
    db: Database,
    engine: Callable[[], Engine],
    batch_id: int,
    *,
    model_name: str,
    max_attempts: int = defaults.BATCH_MAX_ATTEMPTS,
    window_s: float = defaults.DB_RETRY_WINDOW_S,
) -> int:
    """Score one batch of a run's samples under the model this worker serves."""
    c = _claim(db, batch_id, max_attempts, window_s)
    if c is None:
        return 0
    try:
        with db.session() as session:
            scorer = session.get(schema.Model, c.scorer_id)
        if scorer is None or scorer.name != model_name:
            message = f"batch {batch_id} scores under '{scorer.name if scorer else '?'}', but this worker serves '{model_name}'"
            with db.session() as session:
                record_error(session, batch_id, message, final=True)
            return 0
        written = score_run(db, engine(), c.scorer_id, c.run_id, c.problem_ids, retry_window_s=window_s)
    except Exception as exc:
        if is_transient(exc):
            raise
        _failed(db, c, exc, max_attempts, window_s)
        return 0

    def done() -> None:
        with db.session() as session:
            finish(session, batch_id)

    with_retry(done, window_s)
    log.info("batch %s: scored %s samples of run %s", batch_id, written, c.run_id)
    return written
