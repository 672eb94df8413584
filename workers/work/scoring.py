"""The scoring task: the log-likelihood of a run's samples under a scoring model, stored per
(sample, scorer). Idempotent like sampling and grading: what is unscored is read from the
database, scores are upserted."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import and_, select

from boundary.api.db import Database, schema
from boundary.api.db.retry import with_retry
from boundary.api.db.upsert import insert_ignore
from boundary.api.errors import ConfigError
from boundary.api.runs import find_runs, target_runs
from boundary.api.types import ProgressFn, Scorer, ScoreRequest

PAGE = 512
"""Samples scored per engine call."""


def _unscored(run_id: int, scorer_id: int, problem_ids: Sequence[int] | None, after: int):
    query = (
        select(schema.Sample.id, schema.Sample.text, schema.RunProblem.prompt)
        .join(schema.RunProblem, and_(schema.RunProblem.run_id == schema.Sample.run_id,
                                      schema.RunProblem.problem_id == schema.Sample.problem_id))
        .outerjoin(schema.Score, and_(schema.Score.sample_id == schema.Sample.id, schema.Score.scorer_id == scorer_id))
        .where(schema.Sample.run_id == run_id, schema.Score.id.is_(None), schema.Sample.id > after)
        .order_by(schema.Sample.id)
        .limit(PAGE)
    )
    if problem_ids is not None:
        query = query.where(schema.Sample.problem_id.in_(list(problem_ids)))
    return query


def score_run(
    db: Database,
    engine: Any,
    scorer_id: int,
    run_id: int,
    problem_ids: Sequence[int] | None = None,
    progress: ProgressFn | None = None,
    retry_window_s: float = 0.0,
) -> int:
    """Score every unscored sample of ``run_id`` (optionally of ``problem_ids``) under the
    model ``scorer_id`` that ``engine`` serves; returns how many were scored."""
    if not isinstance(engine, Scorer):
        raise ConfigError(f"the {getattr(engine, 'name', '?')} engine cannot score text: use vllm or hf")
    written, after = 0, 0
    while True:

        def read(after: int = after) -> list:
            with db.session() as session:
                return session.execute(_unscored(run_id, scorer_id, problem_ids, after)).all()

        page = with_retry(read, retry_window_s)
        if not page:
            return written
        after = page[-1].id
        requests = [ScoreRequest(r.id, r.prompt or "", r.text) for r in page]
        now = schema.utcnow()
        rows = [{"sample_id": s.key, "scorer_id": scorer_id, "run_id": run_id, "sum_logprob": s.sum_logprob,
                 "num_tokens": s.num_tokens, "created_at": now} for s in engine.score(requests, progress)]

        def write() -> None:
            with db.session() as session:
                insert_ignore(session, schema.Score, rows, ["sample_id", "scorer_id"])

        with_retry(write, retry_window_s)
        written += len(rows)


def score_targets(db: Database, run_ids: Sequence[int], experiment: str | None) -> list[int]:
    """The runs `boundary score` names: ``run_ids`` as given (each must exist), then the runs
    of ``experiment``."""
    with db.session() as session:
        targets = list(run_ids) + (target_runs(session, experiment) if experiment else [])
        for rid in run_ids:
            find_runs(session, [rid])
    return targets
