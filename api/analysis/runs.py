"""Which runs an analysis looks at, with the facts the analyses need about each."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from boundary.api.db import schema
from boundary.api.errors import ConfigError


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
    """The runs asked for (default: all), oldest first; unknown ids are an error."""
    query = (
        select(schema.Run, schema.Model, schema.Benchmark)
        .join(schema.Model, schema.Model.id == schema.Run.model_id)
        .join(schema.Benchmark, schema.Benchmark.id == schema.Run.benchmark_id)
        .order_by(schema.Run.id)
    )
    if run_ids:
        query = query.where(schema.Run.id.in_(list(run_ids)))
    if benchmark:
        query = query.where(schema.Benchmark.name == benchmark)
    rows = session.execute(query).all()
    missing = sorted(set(run_ids) - {r.id for r, _, _ in rows})
    if missing:
        raise ConfigError(f"no run with id {', '.join(map(str, missing))}")
    return [
        RunInfo(r.id, m.name, m.role, m.family, b.name, b.id, b.version, r.temperature, r.top_p, r.max_tokens, r.n,
                r.seed, r.prompt_template, r.engine)
        for r, m, b in rows
    ]
