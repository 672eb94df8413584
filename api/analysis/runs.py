"""Which runs an analysis looks at (found by runs.find_runs), with the facts the analyses need
about each."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from boundary.api.db import schema
from boundary.api.runs import find_runs


@dataclass(frozen=True)
class RunInfo:
    run_id: int
    model: str
    role: str
    family: str | None
    benchmark: str
    benchmark_id: int
    benchmark_version: int
    temperature: float
    top_p: float
    max_tokens: int
    n: int
    seed: int
    template: str
    engine: str

    @property
    def label(self) -> str:
        return f"{self.model} (T={self.temperature:g})"


def run_infos(session: Session, run_ids: Sequence[int] = (), benchmark: str | None = None) -> list[RunInfo]:
    """The runs asked for (default: all), oldest first; an unknown id is ``NotFound`` (runs.find_runs)."""
    ids = find_runs(session, run_ids, benchmark=benchmark)
    rows = session.execute(
        select(schema.Run, schema.Model, schema.Benchmark)
        .join(schema.Model, schema.Model.id == schema.Run.model_id)
        .join(schema.Benchmark, schema.Benchmark.id == schema.Run.benchmark_id)
        .where(schema.Run.id.in_(ids))
        .order_by(schema.Run.id)
    ).all()
    return [
        RunInfo(r.id, m.name, m.role, m.family, b.name, b.id, b.version, r.temperature, r.top_p, r.max_tokens, r.n,
                r.seed, r.prompt_template, r.engine)
        for r, m, b in rows
    ]
