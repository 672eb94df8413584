"""Perplexity of samples under a scoring model (Yue et al., Section 4): are the RL model's
(or a distilled model's) samples ones the base model would have produced? Reported as the
distribution of per-sample perplexity, exp(-mean log-probability of the completion's tokens),
of each run's samples under the scorer, next to the scorer's own samples."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from boundary.api.db import Database, schema
from boundary.api.errors import NotFound


@dataclass(frozen=True)
class Distribution:
    scorer: str
    run_id: int
    model: str
    role: str
    own: bool
    """True when the run's samples come from the scorer itself."""
    samples: int
    mean: float
    median: float
    q25: float
    q75: float
    values: list[float]

    def to_dict(self, with_values: bool = False) -> dict:
        out = {k: getattr(self, k) for k in ("scorer", "run_id", "model", "role", "own", "samples", "mean", "median",
                                             "q25", "q75")}
        if with_values:
            out["values"] = self.values
        return out


def perplexities(session: Session, scorer_id: int, run_ids: Sequence[int] | None = None) -> list[Distribution]:
    """Per run scored by ``scorer_id``: the distribution of its samples' perplexities."""
    scorer = session.get(schema.Model, scorer_id)
    query = (
        select(schema.Score.run_id, schema.Score.sum_logprob, schema.Score.num_tokens)
        .where(schema.Score.scorer_id == scorer_id, schema.Score.num_tokens > 0)
        .order_by(schema.Score.run_id, schema.Score.sample_id)
    )
    if run_ids:
        query = query.where(schema.Score.run_id.in_(list(run_ids)))
    by_run: dict[int, list[float]] = {}
    for run_id, total, tokens in session.execute(query):
        by_run.setdefault(run_id, []).append(math.exp(-total / tokens))
    out = []
    for run_id, values in by_run.items():
        run = session.get(schema.Run, run_id)
        model = session.get(schema.Model, run.model_id)
        x = np.array(values)
        q25, median, q75 = np.quantile(x, [0.25, 0.5, 0.75])
        out.append(Distribution(scorer.name, run_id, model.name, model.role, model.id == scorer_id, len(values),
                                float(x.mean()), float(median), float(q25), float(q75), values))
    return out


def load_perplexities(
    db: Database, scorer: str, run_ids: Sequence[int] = (), required: bool = True
) -> list[Distribution]:
    """The distributions under the model named ``scorer`` (of the runs asked for, default: all
    it scored); an unknown scorer is ``NotFound``, and so are no scores when ``required``."""
    with db.session() as session:
        scorer_id = session.scalars(select(schema.Model.id).where(schema.Model.name == scorer)).one_or_none()
        if scorer_id is None:
            raise NotFound(f"no model named '{scorer}'")
        items = perplexities(session, scorer_id, run_ids or None)
    if not items and required:
        raise NotFound(f"no samples scored under '{scorer}' yet: run `boundary score --scorer {scorer} ...`")
    return items
