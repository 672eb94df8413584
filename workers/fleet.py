"""Submitting experiments and resuming runs: what the front end does with a broker (register
in the database, then publish one message per batch), or without one (run each run in this
process, with the same task functions)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select

from boundary.api.batches import Queued, plan_run
from boundary.api.db import Database, schema
from boundary.api.errors import ConfigError
from boundary.api.experiments import Experiment, experiment_runs, register_experiment, resolve_all
from boundary.api.models import resolve_model
from boundary.api.report import RunReport
from boundary.api.types import Engine, Grader
from boundary.workers.celery_app import make_app
from boundary.workers.embedded import PhaseProgress, run_embedded
from boundary.workers.queue import check_broker, publish

log = logging.getLogger("boundary.worker")


@dataclass(frozen=True)
class Submitted:
    experiment: str
    run_ids: list[int]
    queued: list[Queued]

    def queues(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for q in self.queued:
            counts[q.queue] = counts.get(q.queue, 0) + 1
        return counts


def _publish(broker_url: str, database_url: str, queued: Sequence[Queued], what: str) -> None:
    try:
        publish(make_app(broker_url, database_url), queued)
    except Exception as exc:  # the broker went away between the check and the publish
        raise ConfigError(
            f"publishing to the broker failed ({str(exc).splitlines()[0]}); {what} is stored: "
            "run `boundary resume` once the broker is back"
        ) from None


def submit(db: Database, broker_url: str, experiment: Experiment, data_dir: Path | None) -> Submitted:
    """Check everything, register the experiment, queue the missing work. Nothing is written
    when a run is invalid or the broker does not answer; the same experiment submitted again
    queues only what is still missing."""
    resolved = resolve_all(experiment, data_dir)
    check_broker(broker_url)
    with db.session() as session:
        _, run_ids = register_experiment(session, experiment, resolved)
        queued = [q for rid in run_ids for q in plan_run(session, rid, experiment.batch_size)]
    _publish(broker_url, str(db.engine.url.render_as_string(hide_password=False)), queued, f"experiment '{experiment.name}'")
    return Submitted(experiment.name, run_ids, queued)


def target_runs(db: Database, target: str) -> list[int]:
    """A run id, or the name of an experiment."""
    with db.session() as session:
        if target.isdigit():
            if session.get(schema.Run, int(target)) is None:
                raise ConfigError(f"no run with id {target}")
            return [int(target)]
        return experiment_runs(session, target)


def resume(db: Database, broker_url: str, run_ids: Sequence[int], batch_samples: int) -> list[Queued]:
    """Queue again exactly the work the database says is missing (failed batches included)."""
    check_broker(broker_url)
    with db.session() as session:
        queued = [q for rid in run_ids for q in plan_run(session, rid, batch_samples)]
    _publish(broker_url, str(db.engine.url.render_as_string(hide_password=False)), queued, "the work")
    return queued


def run_experiment_here(
    db: Database,
    experiment: Experiment,
    data_dir: Path | None,
    open_engine: Callable[..., Engine],
    open_grader: Callable[[str], Grader],
    progress: PhaseProgress,
) -> list[RunReport]:
    """The embedded mode: each run of the experiment, one after the other, in this process."""
    resolved = resolve_all(experiment, data_dir)
    with db.session() as session:
        register_experiment(session, experiment, [(spec, problems) for spec, problems in resolved])
    reports = []
    for spec, problems in resolved:
        outcome = run_embedded(
            db,
            spec,
            problems,
            open_engine=lambda spec=spec: open_engine(spec.engine, spec.model, spec.engine_options),
            open_grader=lambda spec=spec: open_grader(spec.benchmark.kind),
            progress=progress,
        )
        reports.append(outcome.report)
    return reports


def worker_model(db: Database, name: str, weights: str | None, wait_s: float = 0.0, poll_s: float = 5.0):
    """The spec a sampling worker loads for the model stored as ``name``: ``weights`` (a
    folder or hub id where this machine has them), else the model's stored source. A worker
    started before any experiment names its model waits up to ``wait_s`` for it."""
    if weights:
        return resolve_model(weights, alias=name)
    deadline = time.monotonic() + wait_s
    announced = False
    while True:
        with db.session() as session:
            row = session.scalars(select(schema.Model).where(schema.Model.name == name)).one_or_none()
        if row is not None:
            break
        if time.monotonic() >= deadline:
            raise ConfigError(f"no model named '{name}' in the database: submit an experiment that uses it first")
        if not announced:
            log.info("waiting for an experiment that uses model '%s' (or give --weights)", name)
            announced = True
        time.sleep(poll_s)
    if not row.source:
        raise ConfigError(f"model '{name}' has no stored source: give --weights PATH_OR_HUB_ID")
    return resolve_model(row.source, alias=name)


def scorer_model(db: Database, name: str) -> tuple[int, object]:
    """The scoring model: a registered model's name (its stored source is loaded), or an
    alias / folder / hub id, registered now as a model of role 'other' if new."""
    from boundary.api.db.upsert import insert_ignore

    with db.session() as session:
        row = session.scalars(select(schema.Model).where(schema.Model.name == name)).one_or_none()
    if row is not None:
        if not row.source:
            raise ConfigError(f"model '{name}' has no stored source to load it from")
        return row.id, resolve_model(row.source, alias=row.name)
    spec = resolve_model(name)
    with db.session() as session:
        insert_ignore(session, schema.Model, [{"name": spec.name, "path": spec.source, "source": spec.ref or None,
                                               "role": spec.default_role, "family": spec.family,
                                               "created_at": schema.utcnow()}], ["name"])
        row = session.scalars(select(schema.Model).where(schema.Model.name == spec.name)).one()
    return row.id, spec


def score_here(db: Database, engine: Engine, scorer_id: int, run_ids: Sequence[int], progress: PhaseProgress) -> int:
    """Score the runs' samples under the scorer in this process."""
    from boundary.api.db.schema import Sample
    from sqlalchemy import func

    from boundary.workers.scoring import score_run

    total = 0
    for run_id in run_ids:
        with db.session() as session:
            count = session.scalar(select(func.count(Sample.id)).where(Sample.run_id == run_id)) or 0
        total += score_run(db, engine, scorer_id, run_id, progress=progress(f"run {run_id}", count))
    return total


def queue_scores(db: Database, broker_url: str, run_ids: Sequence[int], scorer_id: int, batch_samples: int) -> list[Queued]:
    from boundary.api.batches import plan_scores

    check_broker(broker_url)
    with db.session() as session:
        queued = [q for rid in run_ids for q in plan_scores(session, rid, scorer_id, batch_samples)]
    _publish(broker_url, str(db.engine.url.render_as_string(hide_password=False)), queued, "the scoring work")
    return queued
