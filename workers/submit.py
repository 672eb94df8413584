"""Submitting work to a fleet: register it in the database, then publish one message per batch
(experiments, resuming runs, scoring). Nothing is written when the input is invalid or the
broker does not answer; submitting again queues only what is still missing."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.orm import Session

from boundary.api.batch_state import Queued, plan_run, plan_scores
from boundary.api.db import Database
from boundary.api.experiments import Experiment, register_experiment, resolve_all, run_batch_size
from boundary.api.models import scorer_model
from boundary.api.queues import score_queue
from boundary.api.runs import target_runs
from boundary.workers.broker import check_broker, publish_stored
from boundary.workers.work.scoring import score_targets


@dataclass(frozen=True)
class Submitted:
    """What was queued: the runs, and a batch per message."""

    run_ids: list[int]
    queued: list[Queued]
    experiment: str = ""

    def queues(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for q in self.queued:
            counts[q.queue] = counts.get(q.queue, 0) + 1
        return counts

    def count(self, kind: str) -> int:
        return sum(q.kind == kind for q in self.queued)


@dataclass(frozen=True)
class ScoresQueued:
    scorer: str
    run_ids: list[int]
    batches: int
    queue: str

    def to_dict(self) -> dict:
        return {"scorer": self.scorer, "runs": self.run_ids, "batches": self.batches, "queue": self.queue}


def _queue_missing(db: Database, broker_url: str, database_url: str, what: str,
                   plan: Callable[[Session], list[Queued]]) -> list[Queued]:
    """Check the broker, store the batches ``plan`` makes, publish them."""
    check_broker(broker_url)
    with db.session() as session:
        queued = plan(session)
    publish_stored(broker_url, database_url, queued, what)
    return queued


def submit(database_url: str, broker_url: str, experiment: Experiment, data_dir: Path | None) -> Submitted:
    """Check everything, register the experiment, queue the missing work."""
    resolved = resolve_all(experiment, data_dir)  # bad input fails before any connection
    check_broker(broker_url)
    with Database.opened(database_url) as db:
        with db.session() as session:
            _, run_ids = register_experiment(session, experiment, resolved)
            queued = [q for rid in run_ids for q in plan_run(session, rid, experiment.batch_size)]
        publish_stored(broker_url, database_url, queued, f"experiment '{experiment.name}'")
    return Submitted(run_ids, queued, experiment.name)


def resume(database_url: str, broker_url: str, target: str, batch_samples: int | None = None) -> Submitted:
    """Queue again exactly the work the database says a run (by id) or an experiment (by name)
    is missing, failed batches included, in batches of ``batch_samples`` (None: each run's
    experiment's batch size, ``run_batch_size``)."""
    with Database.opened(database_url) as db:
        with db.session() as session:
            run_ids = target_runs(session, target)

        def plan(session: Session) -> list[Queued]:
            return [q for rid in run_ids for q in plan_run(session, rid, batch_samples or run_batch_size(session, rid))]

        queued = _queue_missing(db, broker_url, database_url, "the work", plan)
    return Submitted(run_ids, queued)


def queue_scores(database_url: str, broker_url: str, scorer: str, run_ids: Sequence[int], experiment: str | None,
                 batch_samples: int) -> ScoresQueued:
    """Queue the scoring of the runs' unscored samples on the scorer's queue."""
    with Database.opened(database_url) as db:
        targets = score_targets(db, run_ids, experiment)
        scorer_id, spec = scorer_model(db, scorer)
        queued = _queue_missing(db, broker_url, database_url, "the scoring work", lambda session: [
            q for rid in targets for q in plan_scores(session, rid, scorer_id, batch_samples)])
    return ScoresQueued(spec.name, targets, len(queued), score_queue(spec.name))
