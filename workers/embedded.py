"""The embedded mode: one process samples, grades and reports, using the same task functions
a fleet's workers run. Used by ``boundary run`` with no broker configured."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from boundary.api import defaults
from boundary.api.db import Database
from boundary.api.prompts import get_template
from boundary.api.report import RunReport, run_report
from boundary.api.runs import Plan, RunSpec, plan, register, ungraded_count
from boundary.api.types import Engine, Grader, Problem, ProgressFn
from boundary.workers.grading import grade_run
from boundary.workers.sampling import sample_problems

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


def batches(ids: Sequence[int], per_problem: int, budget: int) -> list[list[int]]:
    """Split problem ids into batches of about ``budget`` samples each."""
    size = max(1, budget // max(1, per_problem))
    return [list(ids[i : i + size]) for i in range(0, len(ids), size)]


def run_embedded(
    db: Database,
    spec: RunSpec,
    problems: Sequence[Problem],
    open_engine: Callable[[], Engine],
    open_grader: Callable[[], Grader],
    progress: PhaseProgress = _silent,
    samples_per_batch: int = defaults.SAMPLES_PER_CHUNK,
) -> RunOutcome:
    """Sample what is missing for ``problems``, grade what is ungraded, and report.

    Nothing is written before the engine has loaded: a model that fails to load leaves the
    database as it was. A run whose samples are all stored loads no engine at all.
    """
    template = get_template(spec.template, spec.benchmark.kind)
    with db.session() as session:
        the_plan = plan(session, spec, problems)
    engine = open_engine() if the_plan.needs_engine else None
    chat = engine.render_chat if engine is not None else None
    with db.session() as session:
        run_id, ids = register(session, spec, problems, lambda p: template.render(p, chat))
    problem_ids = [ids[p.key] for p in problems]
    drawn = 0
    if engine is not None:
        advance = progress("sampling", the_plan.missing_samples)
        for batch in batches(problem_ids, spec.n, samples_per_batch):
            drawn += sample_problems(db, engine, run_id, batch, advance)
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
