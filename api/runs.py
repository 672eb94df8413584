"""Runs in the database: registering models, benchmark versions, runs and their prompts, and
working out what is still missing. The database is the source of truth: what to sample next
is always derived from what is stored, never from a queue or a previous process."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from boundary.api.benchmarks import LoadedBenchmark
from boundary.api.db import schema
from boundary.api.db.upsert import insert_ignore
from boundary.api.errors import ConfigError, NotFound
from boundary.api.models import ModelSpec
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

    def __post_init__(self) -> None:
        if self.n < 1:
            raise ConfigError(f"k (samples per problem) must be >= 1, got {self.n}")


@dataclass(frozen=True)
class Plan:
    """What a run still needs for the selected problems."""

    run_id: int | None
    missing_samples: int
    ungraded_samples: int
    benchmark_notice: str | None

    @property
    def needs_engine(self) -> bool:
        return self.missing_samples > 0


@dataclass(frozen=True)
class Gap:
    """Samples ``first_index .. first_index + count - 1`` of one problem are missing."""

    problem_id: int
    first_index: int
    count: int


def missing_ranges(present: Iterable[int], n: int) -> list[tuple[int, int]]:
    """(first index, count) runs of the indices in [0, n) that are not in ``present``."""
    have = set(present)
    ranges: list[tuple[int, int]] = []
    start = None
    for i in range(n + 1):
        absent = i < n and i not in have
        if absent and start is None:
            start = i
        elif not absent and start is not None:
            ranges.append((start, i - start))
            start = None
    return ranges


# --- lookups ---------------------------------------------------------------------------

def _benchmark_row(session: Session, benchmark: LoadedBenchmark) -> schema.Benchmark | None:
    return session.scalars(
        select(schema.Benchmark).where(
            schema.Benchmark.name == benchmark.name, schema.Benchmark.content_hash == benchmark.content_hash
        )
    ).one_or_none()


def _run_row(session: Session, spec: RunSpec) -> schema.Run | None:
    model = session.scalars(select(schema.Model).where(schema.Model.name == spec.model.name)).one_or_none()
    bench = _benchmark_row(session, spec.benchmark)
    if model is None or bench is None:
        return None
    s = spec.sampling
    return session.scalars(
        select(schema.Run).where(
            schema.Run.model_id == model.id,
            schema.Run.benchmark_id == bench.id,
            schema.Run.temperature == s.temperature,
            schema.Run.top_p == s.top_p,
            schema.Run.max_tokens == s.max_tokens,
            schema.Run.seed == s.seed,
            schema.Run.prompt_template == spec.template,
            schema.Run.engine == spec.engine,
        )
    ).one_or_none()


def benchmark_notice(session: Session, benchmark: LoadedBenchmark) -> str | None:
    """A message when stored versions of this benchmark differ from the loaded content."""
    if _benchmark_row(session, benchmark) is not None:
        return None
    versions = session.scalars(
        select(schema.Benchmark.version).where(schema.Benchmark.name == benchmark.name)
    ).all()
    if not versions:
        return None
    return (
        f"benchmark '{benchmark.name}' differs from the stored version(s) {', '.join(map(str, sorted(versions)))} "
        f"(content hash {benchmark.content_hash[:12]}): it is stored as version {max(versions) + 1}, "
        "and earlier runs stay on their own version"
    )


def check_model(session: Session, model: ModelSpec) -> None:
    """Refuse a model name already registered for other weights or another role."""
    row = session.scalars(select(schema.Model).where(schema.Model.name == model.name)).one_or_none()
    if row is None:
        return
    if row.path != model.source:
        raise ConfigError(
            f"model name '{model.name}' is registered for {row.path}; use --model-name to register {model.source}"
        )
    if model.role is not None and row.role != model.role:
        raise ConfigError(
            f"model '{model.name}' is registered with role '{row.role}', not '{model.role}'; "
            "use --model-name to register it again under another role"
        )


def plan(session: Session, spec: RunSpec, problems: Sequence[Problem]) -> Plan:
    """Count what is missing for ``problems`` without writing anything."""
    check_model(session, spec.model)
    notice = benchmark_notice(session, spec.benchmark)
    run = _run_row(session, spec)
    if run is None:
        return Plan(None, spec.n * len(problems), 0, notice)
    keys = [p.key for p in problems]
    counts = dict(
        session.execute(
            select(schema.Problem.key, func.count(schema.Sample.id))
            .join(schema.Sample, schema.Sample.problem_id == schema.Problem.id)
            .where(
                schema.Sample.run_id == run.id,
                schema.Sample.sample_index < spec.n,
                schema.Problem.benchmark_id == run.benchmark_id,
                schema.Problem.key.in_(keys),
            )
            .group_by(schema.Problem.key)
        ).all()
    )
    missing = sum(spec.n - counts.get(k, 0) for k in keys)
    ungraded = ungraded_count(session, run.id, problem_keys=keys)
    return Plan(run.id, missing, ungraded, notice)


def ungraded_count(session: Session, run_id: int, problem_keys: Sequence[str] | None = None) -> int:
    query = (
        select(func.count(schema.Sample.id))
        .outerjoin(schema.Verdict, schema.Verdict.sample_id == schema.Sample.id)
        .where(schema.Sample.run_id == run_id, schema.Verdict.id.is_(None))
    )
    if problem_keys is not None:
        query = query.join(schema.Problem, schema.Problem.id == schema.Sample.problem_id).where(
            schema.Problem.key.in_(list(problem_keys))
        )
    return session.scalar(query) or 0


# --- registration ----------------------------------------------------------------------

def _ensure_model(session: Session, model: ModelSpec) -> schema.Model:
    check_model(session, model)
    insert_ignore(
        session,
        schema.Model,
        [
            {
                "name": model.name,
                "path": model.source,
                "source": model.ref or None,
                "role": model.role or model.default_role,
                "family": model.family,
                "created_at": schema.utcnow(),
            }
        ],
        ["name"],
    )
    return session.scalars(select(schema.Model).where(schema.Model.name == model.name)).one()


def _ensure_benchmark(session: Session, benchmark: LoadedBenchmark) -> schema.Benchmark:
    row = _benchmark_row(session, benchmark)
    if row is not None:
        return row
    version = (
        session.scalar(select(func.max(schema.Benchmark.version)).where(schema.Benchmark.name == benchmark.name)) or 0
    ) + 1
    row = schema.Benchmark(
        name=benchmark.name,
        version=version,
        kind=benchmark.kind,
        source=benchmark.source,
        content_hash=benchmark.content_hash,
        num_problems=len(benchmark.problems),
    )
    session.add(row)
    session.flush()
    session.execute(
        schema.Problem.__table__.insert(),
        [
            {
                "benchmark_id": row.id,
                "position": i,
                "key": p.key,
                "question": p.question,
                "answer": p.answer,
                "record": dict(p.record),
                "content_hash": p.content_hash,
            }
            for i, p in enumerate(benchmark.problems)
        ],
    )
    return row


def store_benchmark(session: Session, benchmark: LoadedBenchmark) -> schema.Benchmark:
    """Store a benchmark version and its problems (a no-op when this content is stored)."""
    return _ensure_benchmark(session, benchmark)


def _ensure_run(session: Session, spec: RunSpec, model_id: int, benchmark_id: int) -> schema.Run:
    run = _run_row(session, spec)
    if run is None:
        s = spec.sampling
        run = schema.Run(
            model_id=model_id,
            benchmark_id=benchmark_id,
            temperature=s.temperature,
            top_p=s.top_p,
            max_tokens=s.max_tokens,
            n=spec.n,
            seed=s.seed,
            prompt_template=spec.template,
            engine=spec.engine,
            engine_options=dict(spec.engine_options),
        )
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
        model = _ensure_model(session, spec.model)
        bench = _ensure_benchmark(session, spec.benchmark)
        run = _ensure_run(session, spec, model.id, bench.id)
    except IntegrityError as exc:  # another process registered the same thing first
        raise ConfigError(f"concurrent registration of the same run; run the command again ({exc.orig})") from None
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


# --- work ------------------------------------------------------------------------------

@dataclass(frozen=True)
class SampleWork:
    """Prompt, seed and missing ranges of one problem in a run."""

    problem_id: int
    prompt: str
    seed: int
    ranges: tuple[tuple[int, int], ...]

    @property
    def count(self) -> int:
        return sum(c for _, c in self.ranges)


def sample_work(session: Session, run_id: int, problem_ids: Sequence[int]) -> tuple[schema.Run, list[SampleWork]]:
    """The samples still missing in ``run_id`` for ``problem_ids``, derived from the database."""
    run = session.get(schema.Run, run_id)
    if run is None:
        raise ConfigError(f"no run with id {run_id}")
    present: dict[int, list[int]] = {}
    for problem_id, index in session.execute(
        select(schema.Sample.problem_id, schema.Sample.sample_index).where(
            schema.Sample.run_id == run_id, schema.Sample.problem_id.in_(list(problem_ids))
        )
    ):
        present.setdefault(problem_id, []).append(index)
    prompts = {
        row.problem_id: row
        for row in session.scalars(
            select(schema.RunProblem).where(
                schema.RunProblem.run_id == run_id, schema.RunProblem.problem_id.in_(list(problem_ids))
            )
        )
    }
    work = []
    for problem_id in problem_ids:
        if problem_id not in prompts:
            raise ConfigError(f"problem {problem_id} is not part of run {run_id}")
        ranges = missing_ranges(present.get(problem_id, ()), run.n)
        if ranges:
            rp = prompts[problem_id]
            if rp.prompt is None:
                raise ConfigError(f"run {run_id}: the prompt of problem {problem_id} is not rendered yet")
            work.append(SampleWork(problem_id, rp.prompt, rp.seed, tuple(ranges)))
    return run, work


def render_missing_prompts(
    session: Session, run_id: int, problem_ids: Sequence[int], render_chat: Callable[[Sequence[Mapping[str, str]]], str]
) -> int:
    """Render and store the prompts of ``problem_ids`` that a worker has to render (chat
    templates); returns how many. Idempotent: a prompt once stored is never changed."""
    from boundary.api.prompts import TEMPLATES

    run = session.get(schema.Run, run_id)
    if run is None:
        raise ConfigError(f"no run with id {run_id}")
    rows = session.execute(
        select(schema.RunProblem, schema.Problem)
        .join(schema.Problem, schema.Problem.id == schema.RunProblem.problem_id)
        .where(
            schema.RunProblem.run_id == run_id,
            schema.RunProblem.problem_id.in_(list(problem_ids)),
            schema.RunProblem.prompt.is_(None),
        )
    ).all()
    template = TEMPLATES[run.prompt_template]
    for run_problem, problem in rows:
        item = Problem(key=problem.key, question=problem.question, answer=problem.answer, record=problem.record)
        session.execute(
            update(schema.RunProblem)
            .where(
                schema.RunProblem.run_id == run_id,
                schema.RunProblem.problem_id == run_problem.problem_id,
                schema.RunProblem.prompt.is_(None),
            )
            .values(prompt=template.render(item, render_chat))
        )
    return len(rows)


def sampling_config(run: schema.Run) -> SamplingConfig:
    return SamplingConfig(temperature=run.temperature, top_p=run.top_p, max_tokens=run.max_tokens, seed=run.seed)


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
