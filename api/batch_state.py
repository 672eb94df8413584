"""Batch state: the rows of queued work in the database (planning a run's batches, claiming
under a lease, renewing, finishing, failures, and finding the batches whose worker is gone or
whose message was lost). A batch delivered twice changes nothing; see docs/fleet.md."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, case, func, or_, select, update
from sqlalchemy.orm import Session

from boundary.api import defaults
from boundary.api.db import schema
from boundary.api.errors import ConfigError
from boundary.api.queues import grade_queue, sample_queue, score_queue
from boundary.api.samplers import expected_cost_factor, stored_sampler

B = schema.Batch


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


def sample_batch_problems(run: schema.Run, batch_samples: int) -> int:
    """Problems per sampling message: ``batch_samples`` counts plain samples' worth of decoding,
    so a run whose sampler costs f plain samples per sample gets about 1/f as many problems per
    message (at least one), and a power-sampling message takes about as long as a plain one."""
    factor = expected_cost_factor(stored_sampler(run.sampler, run.sampler_options), run.max_tokens)
    return max(1, int(batch_samples // (run.n * factor)))


def plan_run(session: Session, run_id: int, batch_samples: int) -> list[Queued]:
    """Batches for everything a run still misses: sampling for problems short of n samples,
    grading for problems fully sampled but not fully graded."""
    run = session.get(schema.Run, run_id)
    model = session.get(schema.Model, run.model_id)
    bench = session.get(schema.Benchmark, run.benchmark_id)
    to_sample, to_grade = missing_work(session, run_id)
    per_batch = max(1, batch_samples // run.n)
    per_sample_batch = sample_batch_problems(run, batch_samples)
    queued = [
        _new_batch(session, run_id, "sample", sample_queue(model.name), to_sample[i : i + per_sample_batch])
        for i in range(0, len(to_sample), per_sample_batch)
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
class Lease:
    """How a worker holds the batches it takes: for ``duration_s`` after each renewal, renewed
    every ``heartbeat_s``."""

    duration_s: float = defaults.LEASE_S
    heartbeat_s: float = defaults.HEARTBEAT_S

    def __post_init__(self) -> None:
        for name, value in (("--lease", self.duration_s), ("--heartbeat", self.heartbeat_s)):
            if not value > 0:
                raise ConfigError(f"{name} must be a positive number of seconds, got {value:g}")
        if self.duration_s <= self.heartbeat_s:
            raise ConfigError(f"--lease ({self.duration_s:g}s) must be longer than --heartbeat "
                              f"({self.heartbeat_s:g}s): the lease would run out between two renewals")

    def expiry(self, now: datetime) -> datetime:
        return now + timedelta(seconds=self.duration_s)


@dataclass(frozen=True)
class Holder:
    """Who takes a batch: the worker process (``host:pid``), the delivery tag of the message it
    works from, and its lease."""

    owner: str
    tag: str | None
    lease: Lease


@dataclass(frozen=True)
class Claim:
    batch_id: int
    run_id: int
    kind: str
    problem_ids: list[int]
    attempts: int
    scorer_id: int | None = None


_NO_LEASE = {"lease_owner": None, "lease_tag": None, "lease_expires_at": None}


def _lease_gone(now: datetime):
    """A running batch nobody holds: its lease ran out, or it never had one."""
    return or_(B.lease_expires_at.is_(None), B.lease_expires_at < now)


def stored_rows(session: Session, batch: schema.Batch) -> int:
    """The rows of the batch's work stored now: samples, verdicts or scores of its problems."""
    problems = list(batch.problem_ids)
    if batch.kind == "sample":
        query = select(func.count()).where(schema.Sample.run_id == batch.run_id,
                                           schema.Sample.problem_id.in_(problems))
    elif batch.kind == "grade":
        query = select(func.count()).where(schema.Verdict.run_id == batch.run_id,
                                           schema.Verdict.problem_id.in_(problems))
    else:
        query = (select(func.count()).select_from(schema.Score)
                 .join(schema.Sample, schema.Sample.id == schema.Score.sample_id)
                 .where(schema.Score.run_id == batch.run_id, schema.Score.scorer_id == batch.scorer_id,
                        schema.Sample.problem_id.in_(problems)))
    return session.scalar(query) or 0


def claim(session: Session, batch_id: int, max_attempts: int, holder: Holder | None = None) -> Claim | None:
    """Start a delivery of ``batch_id``, under ``holder``'s lease. None when there is nothing to
    do: the batch is done, failed, unknown, held by another live worker (its lease is live and
    this message is not the one that worker took), or has now been delivered more than
    ``max_attempts`` times in a row without storing a row (it is then marked failed).

    A batch held by a live worker is left to it: a second message for it (the broker's
    redelivery after the visibility timeout, a republished one) is dropped, and if that worker
    dies its lease expires and the batch is queued again. The message its holder took coming
    back (same delivery tag) means the holder let go of it (its process died, or the message
    was restored from it): that one takes the batch over. Without a holder the batch is taken
    whatever its lease says.

    ``attempts`` counts the deliveries since the batch last made progress: one that stored
    rows before it died or failed (a worker killed from outside, mid-way through) does not use
    up the batch's attempts; a batch that kills its worker, or fails, before storing anything
    more is given up after ``max_attempts`` such deliveries."""
    batch = session.get(B, batch_id)
    if batch is None or batch.status not in ("queued", "running"):
        return None
    rows = stored_rows(session, batch)
    now = schema.utcnow()
    if holder is None:
        takeable = B.status.in_(("queued", "running"))
        lease = {}
    else:
        free = [_lease_gone(now), B.lease_owner == holder.owner]
        if holder.tag:
            free.append(B.lease_tag == holder.tag)
        takeable = or_(B.status == "queued", and_(B.status == "running", or_(*free)))
        lease = {"lease_owner": holder.owner, "lease_tag": holder.tag,
                 "lease_expires_at": holder.lease.expiry(now)}
    session.execute(
        update(B).where(B.id == batch_id, takeable)
        .values(attempts=case((B.progress < rows, 1), else_=B.attempts + 1), progress=rows, status="running",
                updated_at=now, **lease)
        .execution_options(synchronize_session=False)  # the row is read again below
    )
    batch = session.get(B, batch_id, populate_existing=True)
    if batch is None or batch.status != "running" or (holder and batch.lease_owner != holder.owner):
        return None
    if batch.attempts > max_attempts:
        reason = batch.error or "its worker died during every delivery (killed, out of memory, or crashed)"
        batch.status = "failed"
        batch.error = f"gave up after {max_attempts} deliveries that stored nothing: {reason}"
        batch.lease_owner = batch.lease_tag = batch.lease_expires_at = None
        return None
    return Claim(batch.id, batch.run_id, batch.kind, list(batch.problem_ids), batch.attempts, batch.scorer_id)


def held_by(session: Session, batch_id: int) -> tuple[str, datetime] | None:
    """The live worker holding a running batch and when its lease runs out, if any."""
    row = session.execute(select(B.status, B.lease_owner, B.lease_expires_at).where(B.id == batch_id)).first()
    if row is None or row.status != "running" or row.lease_owner is None or row.lease_expires_at is None:
        return None
    expires = _aware(row.lease_expires_at)
    return (row.lease_owner, expires) if expires > schema.utcnow() else None


def _aware(at: datetime) -> datetime:
    """SQLite gives back naive datetimes; they were written in UTC."""
    return at if at.tzinfo else at.replace(tzinfo=schema.utcnow().tzinfo)


def renew(session: Session, batch_id: int, holder: Holder) -> bool:
    """Extend ``holder``'s lease; False when the batch is no longer held by it (its lease ran
    out and the batch was queued again, or another worker took it over, or it is finished)."""
    now = schema.utcnow()
    renewed = session.execute(
        update(B).where(B.id == batch_id, B.status == "running", B.lease_owner == holder.owner)
        .values(lease_expires_at=holder.lease.expiry(now))
    )
    return renewed.rowcount == 1


def _ours(owner: str | None):
    """A batch this delivery may still write the outcome of: not done, and not held by another
    worker (held by ``owner``, or by nobody since its lease ran out)."""
    clauses = [B.status != "done"]
    if owner is not None:
        clauses.append(or_(B.lease_owner == owner, B.lease_owner.is_(None)))
    return and_(*clauses)


def finish(session: Session, batch_id: int, owner: str | None = None) -> bool:
    """Mark the batch done; False (nothing changed) when it is already done or another worker
    holds it now: that worker finishes it, and this delivery's rows, already written, are
    kept as they are (every write is an idempotent upsert)."""
    done = session.execute(
        update(B).where(B.id == batch_id, _ours(owner))
        .values(status="done", error=None, updated_at=schema.utcnow(), **_NO_LEASE)
    )
    return done.rowcount == 1


def record_error(session: Session, batch_id: int, error: str, final: bool, owner: str | None = None) -> bool:
    """Note why a delivery failed; ``final`` marks the batch failed, else it waits for a retry.
    False (nothing changed) when the batch is done or another worker holds it now."""
    recorded = session.execute(
        update(B).where(B.id == batch_id, _ours(owner))
        .values(status="failed" if final else "queued", error=error[:2000], updated_at=schema.utcnow(), **_NO_LEASE)
    )
    return recorded.rowcount == 1


@dataclass(frozen=True)
class Expired:
    """A batch taken back from a worker whose lease ran out: queued again, to be published
    (or its message, ``tag``, restored from the dead worker)."""

    queued: Queued
    owner: str | None
    tag: str | None


def _chunks(ids: Sequence[int], size: int = 500) -> list[list[int]]:
    return [list(ids[i : i + size]) for i in range(0, len(ids), size)]


def reap_expired(session: Session, blame_window_s: float = 3 * defaults.LEASE_S) -> list[Expired]:
    """Queue again every running batch whose lease has run out. Each batch is taken by one
    reaper only (the update re-checks the lease), and a worker that renews in time keeps it.

    The delivery that died is counted against the batch (its claim counted it) only when the
    batch is the one dying: if a worker holding another batch also died within
    ``blame_window_s`` (this look included), it is the fleet that is losing workers (kills, a
    node going down, preemptions), not the batch that kills them, and the attempt is given
    back. A batch that kills every worker it goes to, alone, is still given up."""
    now = schema.utcnow()
    rows = session.execute(
        select(B.id, B.kind, B.queue, B.lease_owner, B.lease_tag).where(B.status == "running", _lease_gone(now))
    ).all()
    found = {r.id: r for r in rows}
    taken: list[int] = []
    for ids in _chunks(sorted(found)):
        taken += session.scalars(
            update(B).where(B.id.in_(ids), B.status == "running", _lease_gone(now))
            .values(status="queued", updated_at=now, lease_lost_at=now, **_NO_LEASE,
                    error=func.coalesce(B.lease_owner, "a worker") + " stopped renewing its lease (killed, frozen "
                    "or cut off from the database)")
            .returning(B.id)
        ).all()
    if not taken:
        return []
    since = now - timedelta(seconds=blame_window_s)
    died = set(session.scalars(select(B.id).where(B.lease_lost_at >= since, B.lease_lost_at < now))) | set(taken)
    fleet_wide = sorted(i for i in taken if died - {i})
    for ids in _chunks(fleet_wide):
        session.execute(update(B).where(B.id.in_(ids), B.attempts > 0).values(attempts=B.attempts - 1))
    return [Expired(Queued(found[i].id, found[i].kind, found[i].queue), found[i].lease_owner, found[i].lease_tag)
            for i in sorted(taken)]


def long_queued(session: Session, older_than_s: float) -> list[Queued]:
    """Batches queued, unchanged for ``older_than_s``: those a lost message would leave behind
    (every one that is also in a queue is there legitimately)."""
    cutoff = schema.utcnow() - timedelta(seconds=older_than_s)
    rows = session.execute(
        select(B.id, B.kind, B.queue).where(B.status == "queued", B.updated_at < cutoff).order_by(B.id)
    ).all()
    return [Queued(r.id, r.kind, r.queue) for r in rows]


def mark_republished(session: Session, batch_ids: Sequence[int], older_than_s: float) -> list[int]:
    """Take the batches (still queued and unchanged for ``older_than_s``) to publish again,
    restarting their clock; one reaper gets each."""
    now = schema.utcnow()
    cutoff = now - timedelta(seconds=older_than_s)
    out: list[int] = []
    for ids in _chunks(sorted(batch_ids)):
        out += session.scalars(
            update(B).where(B.id.in_(ids), B.status == "queued", B.updated_at < cutoff)
            .values(updated_at=now).returning(B.id)
        ).all()
    return sorted(out)


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
