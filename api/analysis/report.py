"""The pass@k report of a run: its parameters, progress, pass@k and coverage, from the stored
samples and verdicts (see docs/reports.md for partial runs)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import Integer, case, func, select
from sqlalchemy.orm import Session

from boundary.api.analysis.passk import passk_table, with_confidence
from boundary.api.db import Database, schema
from boundary.api.errors import NotFound
from boundary.api.runs import find_runs
from boundary.api.samplers import DIAGNOSTICS, PLAIN, SamplerSpec, stored_sampler


@dataclass(frozen=True)
class RunReport:
    run_id: int
    model: str
    role: str
    benchmark: str
    benchmark_version: int
    template: str
    engine: str
    temperature: float
    top_p: float
    max_tokens: int
    seed: int
    n: int
    problems: int
    samples: int
    graded: int
    correct: int
    partial: bool
    pass_at_k: dict[int, float] = field(default_factory=dict)
    sampler: str = PLAIN
    sampler_options: dict[str, Any] = field(default_factory=dict)
    """The sampler's resolved options (boundary.api.samplers)."""
    mean_decoded_tokens: float | None = None
    """Tokens the engine decoded per sample, rejected proposals and discarded particles included:
    the cost on which runs of different samplers compare."""
    mean_prefill_tokens: float | None = None
    """Context tokens sent per sample, over the samples whose engine counted them (None: none did)."""
    mean_engine_calls: float | None = None
    """Sequences asked of the engine per sample (plain: 1)."""
    mean_sampler_stats: dict[str, float | None] = field(default_factory=dict)
    """The sampler's diagnostics averaged over its samples (samplers.DIAGNOSTICS): power-mcmc's
    acceptance_rate, power-smc's resamples and final_ess; empty for plain."""

    @property
    def sampler_spec(self) -> SamplerSpec:
        return SamplerSpec(self.sampler, self.sampler_options)

    @property
    def sampler_label(self) -> str:
        """The sampler and its options that differ from the defaults (SamplerSpec.label)."""
        return self.sampler_spec.label()

    @property
    def coverage(self) -> float | None:
        """pass@n: the share of problems solved at least once."""
        if not self.pass_at_k:
            return None
        return self.pass_at_k[max(self.pass_at_k)]

    def to_dict(self) -> dict:
        out = asdict(self)
        out["pass_at_k"] = {str(k): v for k, v in self.pass_at_k.items()}
        out["coverage"] = self.coverage
        out["sampler_label"] = self.sampler_label
        return out


@dataclass(frozen=True)
class SampleCost:
    """What the samples of a run cost, averaged per sample (None where no sample counted it)."""

    samples: int
    decoded_tokens: float | None = None
    prefill_tokens: float | None = None
    engine_calls: float | None = None
    sampler_stats: dict[str, float | None] = field(default_factory=dict)


def _mean(value: Any) -> float | None:
    return None if value is None else float(value)  # PostgreSQL averages integers as numeric


def sample_cost(session: Session, run_id: int, n: int, sampler: str, problem_ids: Sequence[int]) -> SampleCost:
    """The count and mean cost of the samples of ``problem_ids`` with index < ``n``, in one SQL
    aggregate on both databases (the diagnostics are read out of the JSON ``sampler_stats``)."""
    S = schema.Sample
    keys = DIAGNOSTICS.get(sampler, ())
    row = session.execute(
        select(func.count(S.id), func.avg(S.decoded_tokens), func.avg(S.prefill_tokens), func.avg(S.engine_calls),
               *[func.avg(S.sampler_stats[key].as_float()) for key in keys])
        .where(S.run_id == run_id, S.sample_index < n, S.problem_id.in_(list(problem_ids)))
    ).one()
    count, decoded, prefill, calls, *stats = row
    return SampleCost(count or 0, _mean(decoded), _mean(prefill), _mean(calls),
                      {key: _mean(v) for key, v in zip(keys, stats)})


def problem_counts(
    session: Session, run_id: int, problem_ids: Sequence[int] | None = None
) -> dict[int, tuple[int, int]]:
    """(graded samples, correct samples) per problem of the run, samples beyond ``n`` excluded."""
    run = session.get(schema.Run, run_id)
    correct = func.sum(case((schema.Verdict.correct, 1), else_=0)).cast(Integer)
    query = (
        select(schema.Sample.problem_id, func.count(schema.Verdict.id), correct)
        .join(schema.Verdict, schema.Verdict.sample_id == schema.Sample.id)
        .where(schema.Sample.run_id == run_id, schema.Sample.sample_index < run.n)
        .group_by(schema.Sample.problem_id)
    )
    if problem_ids is not None:
        query = query.where(schema.Sample.problem_id.in_(list(problem_ids)))
    return {pid: (n, c or 0) for pid, n, c in session.execute(query)}


def run_report(session: Session, run_id: int, problem_ids: Sequence[int] | None = None) -> RunReport:
    """The pass@k table of one run, over ``problem_ids`` (default: every problem in the run)."""
    row = session.execute(
        select(schema.Run, schema.Model, schema.Benchmark)
        .join(schema.Model, schema.Model.id == schema.Run.model_id)
        .join(schema.Benchmark, schema.Benchmark.id == schema.Run.benchmark_id)
        .where(schema.Run.id == run_id)
    ).one_or_none()
    if row is None:
        raise NotFound(f"no run with id {run_id}")
    run, model, bench = row
    if problem_ids is None:
        problem_ids = list(
            session.scalars(select(schema.RunProblem.problem_id).where(schema.RunProblem.run_id == run_id)).all()
        )
    cost = sample_cost(session, run_id, run.n, run.sampler, problem_ids)
    sampler = stored_sampler(run.sampler, run.sampler_options)
    counts = problem_counts(session, run_id, problem_ids)
    graded = sum(n for n, _ in counts.values())
    partial = len(counts) < len(problem_ids) or any(n < run.n for n, _ in counts.values())
    passk = {row.k: row.value for row in passk_table(session, [run_id], problem_ids=list(counts))} if counts else {}
    return RunReport(
        run_id=run.id,
        model=model.name,
        role=model.role,
        benchmark=bench.name,
        benchmark_version=bench.version,
        template=run.prompt_template,
        engine=run.engine,
        temperature=run.temperature,
        top_p=run.top_p,
        max_tokens=run.max_tokens,
        seed=run.seed,
        n=run.n,
        problems=len(problem_ids),
        samples=cost.samples,
        graded=graded,
        correct=sum(c for _, c in counts.values()),
        partial=partial,
        pass_at_k=passk,
        sampler=sampler.name,
        sampler_options=dict(sampler.options),
        mean_decoded_tokens=cost.decoded_tokens,
        mean_prefill_tokens=cost.prefill_tokens,
        mean_engine_calls=cost.engine_calls,
        mean_sampler_stats=cost.sampler_stats,
    )


def reports(
    session: Session, run_ids: Sequence[int] = (), model: str | None = None, benchmark: str | None = None
) -> list[RunReport]:
    """The reports of the runs that match (runs.find_runs), oldest first."""
    return [run_report(session, rid) for rid in find_runs(session, run_ids, model=model, benchmark=benchmark)]


Intervals = dict[int, dict[str, list[float]]]
"""Per run, per k (as text): the 95% bootstrap interval [low, high] of pass@k."""


def intervals(session: Session, items: Sequence[RunReport]) -> Intervals:
    """The bootstrap intervals of every graded run among ``items`` (an empty entry for the others)."""
    graded = [r.run_id for r in items if r.pass_at_k]
    out: Intervals = {r.run_id: {} for r in items}
    for p in with_confidence(session, graded):
        out[p.run_id][str(p.k)] = [p.ci_low, p.ci_high]
    return out


@dataclass(frozen=True)
class PassKReports:
    """What `boundary report` shows: the runs' reports, with their intervals where asked for."""

    reports: list[RunReport]
    intervals: Intervals | None = None

    def to_dicts(self) -> list[dict]:
        return [{**r.to_dict(), **({"ci": self.intervals[r.run_id]} if self.intervals is not None else {})}
                for r in self.reports]


def load_reports(db: Database, run_ids: Sequence[int] = (), *, model: str | None = None, benchmark: str | None = None,
                 ci: bool = False) -> PassKReports:
    """The reports of the matching runs, with bootstrap intervals when ``ci``."""
    with db.session() as session:
        items = reports(session, run_ids, model, benchmark)
        return PassKReports(items, intervals(session, items) if ci else None)
