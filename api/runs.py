"""Runs: what identifies one (model, benchmark version, sampling, template, engine, sampler), its
registration in the database with its problems' prompts and seeds, and the one run lookup.
Seeds and registration: docs/library.md, "Runs and planning"."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from boundary.api.benchmarks import LoadedBenchmark
from boundary.api.benchmarks.store import store_benchmark, stored_benchmark
from boundary.api.db import schema
from boundary.api.db.upsert import insert_ignore
from boundary.api.errors import ConfigError, DatabaseError, NotFound
from boundary.api.models import ModelSpec, register_model, stored_model
from boundary.api.samplers import SamplerSpec
from boundary.api.types import Problem, SamplingConfig

SEED_SPACE = 2**30
"""Problem seeds lie in [0, 2^30), leaving room for ``seed + sample index`` in 31 bits."""


def problem_seed(run_seed: int, key: str) -> int:
    """The base seed of one problem in a run: stable across processes, machines and versions."""
    digest = hashlib.blake2b(f"{run_seed}:{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % SEED_SPACE


@dataclass(frozen=True)
class RunSpec:
    """Everything that identifies a run, plus how many samples per problem are wanted."""

    model: ModelSpec
    benchmark: LoadedBenchmark
    sampling: SamplingConfig
    template: str
    engine: str
    n: int
    engine_options: dict[str, Any] = field(default_factory=dict)
    sampler: SamplerSpec = field(default_factory=SamplerSpec)

    def __post_init__(self) -> None:
        if self.n < 1:
            raise ConfigError(f"k (samples per problem) must be >= 1, got {self.n}")


# --- identity --------------------------------------------------------------------------

def _identity(spec: RunSpec) -> dict[str, Any]:
    """The columns that identify a run besides its model and benchmark version (uq_runs_identity)."""
    s = spec.sampling
    return {"temperature": s.temperature, "top_p": s.top_p, "max_tokens": s.max_tokens, "seed": s.seed,
            "prompt_template": spec.template, "engine": spec.engine, "sampler": spec.sampler.name,
            "sampler_options": spec.sampler.canonical()}


def stored_run(session: Session, spec: RunSpec) -> schema.Run | None:
    """The run registered for ``spec``, if any (its ``n`` may differ: asking for more tops it up)."""
    model = stored_model(session, spec.model.name)
    bench = stored_benchmark(session, spec.benchmark)
    if model is None or bench is None:
        return None
    key = {"model_id": model.id, "benchmark_id": bench.id, **_identity(spec)}
    return session.scalars(select(schema.Run).filter_by(**key)).one_or_none()


# --- registration ----------------------------------------------------------------------

def _ensure_run(session: Session, spec: RunSpec, model_id: int, benchmark_id: int) -> schema.Run:
    run = stored_run(session, spec)
    if run is None:
        run = schema.Run(model_id=model_id, benchmark_id=benchmark_id, n=spec.n,
                         engine_options=dict(spec.engine_options), **_identity(spec))
        session.add(run)
        session.flush()
    elif spec.n > run.n:
        run.n = spec.n
    return run


def register(
    session: Session,
    spec: RunSpec,
    problems: Sequence[Problem],
    render: Callable[[Problem], str | None],
) -> tuple[int, dict[str, int]]:
    """Create (or find) the model, benchmark version, run and the selected problems' prompts.

    Returns the run id and the problem id of each selected key. Prompts already stored for
    this run are kept: a run's prompt never changes under it. ``render`` may return None for
    a prompt only the sampling worker can render (the model's chat template).
    """
    try:
        model = register_model(session, spec.model)
        bench = store_benchmark(session, spec.benchmark)
        run = _ensure_run(session, spec, model.id, bench.id)
    except IntegrityError as exc:  # another process registered the same thing first
        raise DatabaseError(f"concurrent registration of the same run; run the command again ({exc.orig})") from None
    keys = [p.key for p in problems]
    ids = dict(
        session.execute(
            select(schema.Problem.key, schema.Problem.id).where(
                schema.Problem.benchmark_id == bench.id, schema.Problem.key.in_(keys)
            )
        ).all()
    )
    stored = set(
        session.scalars(
            select(schema.RunProblem.problem_id).where(
                schema.RunProblem.run_id == run.id, schema.RunProblem.problem_id.in_(list(ids.values()))
            )
        ).all()
    )
    rows = [
        {"run_id": run.id, "problem_id": ids[p.key], "prompt": render(p), "seed": problem_seed(run.seed, p.key)}
        for p in problems
        if ids[p.key] not in stored
    ]
    insert_ignore(session, schema.RunProblem, rows, ["run_id", "problem_id"])
    return run.id, {k: ids[k] for k in keys}


# --- lookup ----------------------------------------------------------------------------

def find_runs(
    session: Session,
    run_ids: Sequence[int] = (),
    *,
    model: str | None = None,
    benchmark: str | None = None,
    experiment: str | None = None,
) -> list[int]:
    """The one run lookup: the ids of the runs that match every filter given (none: all runs),
    oldest first. An id or an experiment that does not exist is ``NotFound``."""
    query = (
        select(schema.Run.id)
        .join(schema.Model, schema.Model.id == schema.Run.model_id)
        .join(schema.Benchmark, schema.Benchmark.id == schema.Run.benchmark_id)
        .order_by(schema.Run.id)
    )
    if run_ids:
        query = query.where(schema.Run.id.in_(list(run_ids)))
    if model:
        query = query.where(schema.Model.name == model)
    if benchmark:
        query = query.where(schema.Benchmark.name == benchmark)
    if experiment is not None:
        row = session.scalars(select(schema.Experiment).where(schema.Experiment.name == experiment)).one_or_none()
        if row is None:
            raise NotFound(f"no experiment named '{experiment}'")
        query = query.join(schema.ExperimentRun, schema.ExperimentRun.run_id == schema.Run.id).where(
            schema.ExperimentRun.experiment_id == row.id
        )
    found = list(session.scalars(query).all())
    missing = sorted(set(run_ids) - set(found))
    if missing:
        raise NotFound(f"no run with id {', '.join(map(str, missing))}")
    return found


def target_runs(session: Session, target: str) -> list[int]:
    """What an operator names on the command line: a run id, or the name of an experiment."""
    if target.isdigit():
        return find_runs(session, [int(target)])
    return find_runs(session, experiment=target)
