"""Batch delivery: one routine (claim, check, work, finish, or record the error and back off)
and a small adapter per kind of batch; plain functions, called by ``boundary.workers.tasks``.
See docs/fleet.md."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from sqlalchemy.orm import Session

from boundary.api import defaults
from boundary.api.batch_state import (
    Claim,
    Holder,
    Queued,
    claim,
    finish,
    grade_batch_for,
    held_by,
    record_error,
    unpublished_grade_batches,
)
from boundary.api.db import Database, schema
from boundary.api.db.retry import is_transient, with_retry
from boundary.api.samplers import PLAIN
from boundary.api.types import Engine, Grader
from boundary.workers.heartbeat import Heartbeat
from boundary.workers.work.grading import grade_run
from boundary.workers.work.sampling import sample_problems
from boundary.workers.work.scoring import score_run

log = logging.getLogger("boundary.worker")

T = TypeVar("T")


class Retry(Exception):
    """Deliver this batch again after ``countdown`` seconds."""

    def __init__(self, countdown: float, reason: str):
        super().__init__(reason)
        self.countdown = countdown


class Job(Generic[T]):
    """What the delivery routine asks of one kind of batch. ``T`` is what a delivery returns:
    the count of rows written, or the batches to publish next."""

    def refusal(self, session: Session, c: Claim) -> str | None:
        """Why this worker must not do the batch (it serves another model), else None."""
        return None

    def work(self, db: Database, c: Claim, window_s: float) -> int:
        """Do the batch; returns how many rows were written."""
        raise NotImplementedError

    def done(self, session: Session, c: Claim, count: int) -> T:
        """In the transaction that marks the batch done: the delivery's result."""
        raise NotImplementedError

    def nothing(self) -> T:
        """The result of a delivery that did no work (refused or failed)."""
        raise NotImplementedError

    def unclaimed(self, db: Database, batch_id: int, window_s: float) -> T:
        """The result of a delivery of a batch with nothing to do (done, failed or unknown)."""
        return self.nothing()

    def line(self, c: Claim, count: int) -> str:
        """The log line of a finished batch."""
        raise NotImplementedError


def _backoff(attempt: int) -> float:
    return min(defaults.RETRY_BACKOFF_MAX_S, 2.0 ** max(0, attempt - 1))


def _in_session(db: Database, window_s: float, step: Callable[[Session], T]) -> T:
    """``step`` in a session of its own, retried while the database is unreachable."""
    def attempt() -> T:
        with db.session() as session:
            return step(session)

    return with_retry(attempt, window_s)


def _failed(db: Database, c: Claim, exc: BaseException, max_attempts: int, window_s: float,
            owner: str | None) -> None:
    """Record a failed delivery; raise Retry unless that was the last allowed one (or the batch
    is another worker's now)."""
    final = c.attempts >= max_attempts
    message = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"[:500]
    recorded = _in_session(db, window_s, lambda session: record_error(session, c.batch_id, message, final, owner))
    log.warning("batch %s delivery %s/%s failed: %s", c.batch_id, c.attempts, max_attempts, message)
    if recorded and not final:
        raise Retry(_backoff(c.attempts), message)


def _leave_it(db: Database, batch_id: int, window_s: float) -> None:
    held = _in_session(db, window_s, lambda session: held_by(session, batch_id))
    if held:
        log.info("batch %s is held by %s (lease until %s): this message is dropped", batch_id, held[0],
                 held[1].strftime("%H:%M:%S"))


def deliver(db: Database, job: Job[T], batch_id: int, max_attempts: int, window_s: float,
            holder: Holder | None = None) -> T:
    """One delivery of ``batch_id``: claim it under ``holder``'s lease, do it while a
    heartbeat renews the lease, mark it done. A failure is recorded and retried with backoff up
    to ``max_attempts`` deliveries; a database outage is raised (the batch was not harmed: the
    message is retried as it is). A batch another live worker holds is left to it."""
    c = _in_session(db, window_s, lambda session: claim(session, batch_id, max_attempts, holder))
    if c is None:
        if holder is not None:
            _leave_it(db, batch_id, window_s)
        return job.unclaimed(db, batch_id, window_s)
    owner = holder.owner if holder else None
    try:
        with db.session() as session:
            refusal = job.refusal(session, c)
        if refusal:
            with db.session() as session:
                record_error(session, batch_id, refusal, True, owner)
            log.error("batch %s: %s", batch_id, refusal)
            return job.nothing()
        if holder is None:
            count = job.work(db, c, window_s)
        else:
            with Heartbeat(db, batch_id, holder):
                count = job.work(db, c, window_s)
    except Exception as exc:
        if is_transient(exc):
            raise
        _failed(db, c, exc, max_attempts, window_s, owner)
        return job.nothing()

    def done(session: Session) -> tuple[bool, T]:
        if not finish(session, batch_id, owner):
            return False, job.nothing()
        return True, job.done(session, c, count)

    finished, result = _in_session(db, window_s, done)
    if finished:
        log.info("batch %s: %s", batch_id, job.line(c, count))
    else:
        log.warning("batch %s: %s, but another worker took the batch over meanwhile (this one's lease ran out); "
                    "the rows are kept, that worker marks it done", batch_id, job.line(c, count))
    return result


class _Counted(Job[int]):
    """A batch whose result is the number of rows it wrote."""

    def done(self, session: Session, c: Claim, count: int) -> int:
        return count

    def nothing(self) -> int:
        return 0


@dataclass
class Sampling(Job[list[Queued]]):
    engine: Callable[..., Engine]
    """This worker's engine; called with ``tokens=True`` for a run whose sampler is not plain."""
    model_name: str
    engine_name: str

    def refusal(self, session: Session, c: Claim) -> str | None:
        run = session.get(schema.Run, c.run_id)
        model = session.get(schema.Model, run.model_id)
        if model.name != self.model_name:
            return f"run {run.id} samples model '{model.name}', but this worker serves '{self.model_name}'"
        if run.engine != self.engine_name:
            return f"run {run.id} samples with engine '{run.engine}', but this worker runs '{self.engine_name}'"
        return None

    def work(self, db: Database, c: Claim, window_s: float) -> int:
        with db.session() as session:
            plain = session.get(schema.Run, c.run_id).sampler == PLAIN
        engine = self.engine() if plain else self.engine(tokens=True)
        return sample_problems(db, engine, c.run_id, c.problem_ids, retry_window_s=window_s)

    def done(self, session: Session, c: Claim, count: int) -> list[Queued]:
        return [grade_batch_for(session, c.batch_id)]

    def nothing(self) -> list[Queued]:
        return []

    def unclaimed(self, db: Database, batch_id: int, window_s: float) -> list[Queued]:
        """A redelivery of a batch that is done: the grading batch its dead worker drew but
        never published, if any."""
        queued = _in_session(db, window_s, lambda session: unpublished_grade_batches(session, batch_id))
        if queued:
            log.warning("batch %s was done but its grading batch %s was never published: publishing it",
                        batch_id, queued[0].batch_id)
        return queued

    def line(self, c: Claim, count: int) -> str:
        return f"drew {count} samples for {len(c.problem_ids)} problems of run {c.run_id}"


@dataclass
class Grading(_Counted):
    grader: Callable[[str], Grader]

    def work(self, db: Database, c: Claim, window_s: float) -> int:
        with db.session() as session:
            run = session.get(schema.Run, c.run_id)
            kind = session.get(schema.Benchmark, run.benchmark_id).kind
        return grade_run(db, self.grader(kind), c.run_id, c.problem_ids, retry_window_s=window_s)

    def line(self, c: Claim, count: int) -> str:
        return f"graded {count} samples of run {c.run_id}"


@dataclass
class Scoring(_Counted):
    engine: Callable[[], Engine]
    model_name: str

    def refusal(self, session: Session, c: Claim) -> str | None:
        scorer = session.get(schema.Model, c.scorer_id)
        if scorer is None or scorer.name != self.model_name:
            name = scorer.name if scorer else "?"
            return f"batch {c.batch_id} scores under '{name}', but this worker serves '{self.model_name}'"
        return None

    def work(self, db: Database, c: Claim, window_s: float) -> int:
        return score_run(db, self.engine(), c.scorer_id, c.run_id, c.problem_ids, retry_window_s=window_s)

    def line(self, c: Claim, count: int) -> str:
        return f"scored {count} samples of run {c.run_id}"


def run_sample_batch(db: Database, engine: Callable[..., Engine], batch_id: int, *, model_name: str, engine_name: str,
                     max_attempts: int = defaults.BATCH_MAX_ATTEMPTS,
                     window_s: float = defaults.DB_RETRY_WINDOW_S, holder: Holder | None = None) -> list[Queued]:
    """Sample one batch; returns the grading batch to publish next (none if nothing ran, or
    the one a dead worker drew but never published, when this is a redelivery)."""
    return deliver(db, Sampling(engine, model_name, engine_name), batch_id, max_attempts, window_s, holder)


def run_grade_batch(db: Database, grader: Callable[[str], Grader], batch_id: int, *,
                    max_attempts: int = defaults.BATCH_MAX_ATTEMPTS,
                    window_s: float = defaults.DB_RETRY_WINDOW_S, holder: Holder | None = None) -> int:
    """Grade one batch; returns the number of verdicts written."""
    return deliver(db, Grading(grader), batch_id, max_attempts, window_s, holder)


def run_score_batch(db: Database, engine: Callable[[], Engine], batch_id: int, *, model_name: str,
                    max_attempts: int = defaults.BATCH_MAX_ATTEMPTS,
                    window_s: float = defaults.DB_RETRY_WINDOW_S, holder: Holder | None = None) -> int:
    """Score one batch of a run's samples under the model this worker serves."""
    return deliver(db, Scoring(engine, model_name), batch_id, max_attempts, window_s, holder)
