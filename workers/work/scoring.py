"""The scoring task: the log-likelihood of a run's samples under a scoring model, stored per
(sample, scorer). Idempotent like sampling and grading: what is unscored is read from the
database, scores are upserted."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any

from sqlalchemy import and_, select

from boundary.api.db import Database, schema
from boundary.api.errors import ConfigError
from boundary.api.runs import find_runs, target_runs
from boundary.api.types import ProgressFn, Scorer, ScoreRequest
from boundary.workers.work.rows import pages, sample_page, write_rows

PAGE = 512
"""Samples scored per engine call."""


def _unscored(run_id: int, scorer_id: int, problem_ids: Sequence[int] | None, after: int):
    query = (
        select(schema.Sample.id, schema.Sample.text, schema.RunProblem.prompt)
        .join(schema.RunProblem, and_(schema.RunProblem.run_id == schema.Sample.run_id,
                                      schema.RunProblem.problem_id == schema.Sample.problem_id))
        .outerjoin(schema.Score, and_(schema.Score.sample_id == schema.Sample.id, schema.Score.scorer_id == scorer_id))
        .where(schema.Score.id.is_(None))
    )
    return sample_page(query, run_id, problem_ids, after, PAGE)


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
    written = 0
    for page in pages(db, partial(_unscored, run_id, scorer_id, problem_ids), retry_window_s):
        requests = [ScoreRequest(r.id, r.prompt or "", r.text) for r in page]
        now = schema.utcnow()
        rows = [{"sample_id": s.key, "scorer_id": scorer_id, "run_id": run_id, "sum_logprob": s.sum_logprob,
                 "num_tokens": s.num_tokens, "created_at": now} for s in engine.score(requests, progress)]
        written += write_rows(db, schema.Score, rows, ["sample_id", "scorer_id"], retry_window_s)
    return written


def score_targets(db: Database, run_ids: Sequence[int], experiment: str | None) -> list[int]:
    """The runs `boundary score` names: ``run_ids`` as given (each must exist), then the runs
    of ``experiment``."""
    with db.session() as session:
        targets = list(run_ids) + (target_runs(session, experiment) if experiment else [])
        for rid in run_ids:
            find_runs(session, [rid])
    return targets
