"""Planning: what a run still needs, derived from the database alone (never from a queue or a
previous process): samples missing per problem, ungraded samples, prompts a worker has to
render, and the work one sampling batch has to do."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from boundary.api.benchmarks.store import benchmark_notice
from boundary.api.db import schema
from boundary.api.errors import NotFound
from boundary.api.models import check_model
from boundary.api.prompts import TEMPLATES
from boundary.api.runs import RunSpec, stored_run
from boundary.api.samplers import SamplerSpec, stored_sampler
from boundary.api.types import Problem, SamplingConfig


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


def plan(session: Session, spec: RunSpec, problems: Sequence[Problem]) -> Plan:
    """Count what is missing for ``problems`` without writing anything."""
    check_model(session, spec.model)
    notice = benchmark_notice(session, spec.benchmark)
    run = stored_run(session, spec)
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
    """Samples of ``run_id`` (of ``problem_keys``, else all) that have no verdict yet."""
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


def _run(session: Session, run_id: int) -> schema.Run:
    run = session.get(schema.Run, run_id)
    if run is None:
        raise NotFound(f"no run with id {run_id}")
    return run


def sample_work(session: Session, run_id: int, problem_ids: Sequence[int]) -> tuple[schema.Run, list[SampleWork]]:
    """The samples still missing in ``run_id`` for ``problem_ids``, derived from the database."""
    run = _run(session, run_id)
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
            raise NotFound(f"problem {problem_id} is not part of run {run_id}")
        ranges = missing_ranges(present.get(problem_id, ()), run.n)
        if ranges:
            rp = prompts[problem_id]
            if rp.prompt is None:
                raise NotFound(f"run {run_id}: the prompt of problem {problem_id} is not rendered yet")
            work.append(SampleWork(problem_id, rp.prompt, rp.seed, tuple(ranges)))
    return run, work


def render_missing_prompts(
    session: Session, run_id: int, problem_ids: Sequence[int], render_chat: Callable[[Sequence[Mapping[str, str]]], str]
) -> int:
    """Render and store the prompts of ``problem_ids`` that a worker has to render (chat
    templates); returns how many. Idempotent: a prompt once stored is never changed."""
    run = _run(session, run_id)
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


def run_sampler(run: schema.Run) -> SamplerSpec:
    """The sampler a stored run was registered with."""
    return stored_sampler(run.sampler, run.sampler_options)


def sampling_config(run: schema.Run) -> SamplingConfig:
    """The sampling parameters a stored run was registered with."""
    return SamplingConfig(temperature=run.temperature, top_p=run.top_p, max_tokens=run.max_tokens, seed=run.seed)
