"""The embedded mode: one process samples, grades, scores and reports, with the same task
functions a fleet's workers run. Used by ``boundary run``, and by ``submit`` and ``score``
without a broker."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import func, select

from boundary.api import defaults
from boundary.api.analysis.report import RunReport, run_report
from boundary.api.db import Database, schema
from boundary.api.experiments import Experiment, register_experiment, resolve_all
from boundary.api.models import ModelSpec, scorer_model
from boundary.api.planning import Plan, plan, ungraded_count
from boundary.api.prompts import get_template
from boundary.api.runs import RunSpec, register
from boundary.api.samplers import expected_cost_factor
from boundary.api.types import Engine, Grader, Problem, ProgressFn
from boundary.workers.samplers import token_engine_of
from boundary.workers.work.grading import grade_run
from boundary.workers.work.sampling import sample_problems
from boundary.workers.work.scoring import score_run, score_targets

PhaseProgress = Callable[[str, int], ProgressFn]
"""Given a phase name and its total, returns the callback that advances it."""


def _silent(_phase: str, _total: int) -> ProgressFn:
    return lambda _n: None


@dataclass(frozen=True)
class RunOutcome:
    run_id: int
    drawn: int
    graded: int
    plan: Plan
    report: RunReport


def chunks(ids: Sequence[int], per_problem: int, budget: int) -> list[list[int]]:
    """Split problem ids into chunks of about ``budget`` samples each (not queued batches: the
    embedded mode samples one chunk after another)."""
    size = max(1, budget // max(1, per_problem))
    return [list(ids[i : i + size]) for i in range(0, len(ids), size)]


def run_embedded(
    db: Database,
    spec: RunSpec,
    problems: Sequence[Problem],
    open_engine: Callable[[], Engine],
    open_grader: Callable[[], Grader],
    progress: PhaseProgress = _silent,
    samples_per_chunk: int = defaults.SAMPLES_PER_CHUNK,
) -> RunOutcome:
    """Sample what is missing for ``problems``, grade what is ungraded, and report.

    Nothing is written before the engine has loaded: a model that fails to load leaves the
    database as it was. A run whose samples are all stored loads no engine at all.
    """
    template = get_template(spec.template, spec.benchmark.kind)
    with db.session() as session:
        the_plan = plan(session, spec, problems)
    engine = open_engine() if the_plan.needs_engine else None
    if engine is not None and not spec.sampler.is_plain:
        token_engine_of(engine, spec.sampler.name)  # an engine that cannot refuses before anything is written
    chat = engine.render_chat if engine is not None else None
    with db.session() as session:
        run_id, ids = register(session, spec, problems, lambda p: template.render(p, chat))
    problem_ids = [ids[p.key] for p in problems]
    drawn = 0
    if engine is not None:
        advance = progress("sampling", the_plan.missing_samples)
        budget = max(1, int(samples_per_chunk // expected_cost_factor(spec.sampler, spec.sampling.max_tokens)))
        for chunk in chunks(problem_ids, spec.n, budget):
            drawn += sample_problems(db, engine, run_id, chunk, advance)
    with db.session() as session:
        ungraded = ungraded_count(session, run_id, problem_keys=[p.key for p in problems])
    graded = 0
    if ungraded:
        grader = open_grader()
        try:
            graded = grade_run(db, grader, run_id, problem_ids, progress("grading", ungraded))
        finally:
            grader.close()
    with db.session() as session:
        report = run_report(session, run_id, problem_ids)
    return RunOutcome(run_id, drawn, graded, the_plan, report)


def run_experiment_here(
    db: Database,
    experiment: Experiment,
    data_dir: Path | None,
    open_engine: Callable[..., Engine],
    open_grader: Callable[[str], Grader],
    progress: PhaseProgress,
) -> list[RunReport]:
    """Each run of the experiment, one after the other, in this process."""
    resolved = resolve_all(experiment, data_dir)
    with db.session() as session:
        register_experiment(session, experiment, [(spec, problems) for spec, problems in resolved])
    reports = []
    for spec, problems in resolved:
        outcome = run_embedded(
            db,
            spec,
            problems,
            open_engine=lambda spec=spec: open_engine(spec.engine, spec.model, spec.engine_options,
                                                      tokens=not spec.sampler.is_plain),
            open_grader=lambda spec=spec: open_grader(spec.benchmark.kind),
            progress=progress,
        )
        reports.append(outcome.report)
    return reports


@dataclass(frozen=True)
class Scored:
    scorer: str
    run_ids: list[int]
    scored: int

    def to_dict(self) -> dict:
        return {"scorer": self.scorer, "runs": self.run_ids, "scored": self.scored}


def score_here(database_url: str, scorer: str, run_ids: Sequence[int], experiment: str | None,
               open_engine: Callable[[ModelSpec], Engine], bars: AbstractContextManager[PhaseProgress]) -> Scored:
    """Score the runs' samples (``run_ids``, then those of ``experiment``) under ``scorer``, in
    this process. ``bars`` shows progress once the model has loaded."""
    with Database.opened(database_url) as db:
        targets = score_targets(db, run_ids, experiment)
        scorer_id, spec = scorer_model(db, scorer)
        engine = open_engine(spec)
        with bars as progress:
            total = sum(_score_run_here(db, engine, scorer_id, run_id, progress) for run_id in targets)
    return Scored(spec.name, targets, total)


def _score_run_here(db: Database, engine: Engine, scorer_id: int, run_id: int, progress: PhaseProgress) -> int:
    with db.session() as session:
        count = session.scalar(select(func.count(schema.Sample.id)).where(schema.Sample.run_id == run_id)) or 0
    return score_run(db, engine, scorer_id, run_id, progress=progress(f"run {run_id}", count))

