"""Which runs an analysis looks at (found by runs.find_runs), with the facts the analyses need
about each."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from boundary.api.db import schema
from boundary.api.runs import find_runs
from boundary.api.samplers import PLAIN, SamplerSpec, stored_sampler


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
    sampler: str = PLAIN
    sampler_options: dict[str, Any] = field(default_factory=dict)
    """The sampler's resolved options (boundary.api.samplers)."""

    @property
    def sampler_spec(self) -> SamplerSpec:
        return SamplerSpec(self.sampler, self.sampler_options)

    @property
    def label(self) -> str:
        """How tables, legends and figures name the run: the model and its temperature, and the
        sampler with the options it changed when not plain, so that runs differing only by
        sampler read apart (``base (T=0.25, power-mcmc block_tokens=32)``)."""
        if self.sampler == PLAIN:
            return f"{self.model} (T={self.temperature:g})"
        return f"{self.model} (T={self.temperature:g}, {self.sampler_spec.label()})"


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
    out = []
    for r, m, b in rows:
        sampler = stored_sampler(r.sampler, r.sampler_options)
        out.append(RunInfo(r.id, m.name, m.role, m.family, b.name, b.id, b.version, r.temperature, r.top_p,
                           r.max_tokens, r.n, r.seed, r.prompt_template, r.engine, sampler.name, dict(sampler.options)))
    return out
