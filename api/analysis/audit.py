"""The lucky-guess audit: a reproducible review set of correct samples per run, and per problem
the pass@k of guessing from the model's own answer distribution (why: docs/reports.md)."""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from boundary.api.analysis.estimator import k_grid
from boundary.api.analysis.passk import per_problem
from boundary.api.analysis.runs import RunInfo, run_infos
from boundary.api.db import Database, schema


def normalize(answer: str | None) -> str:
    """A comparable form of an extracted answer: no \\boxed{}, $, spaces, trailing '.0'."""
    if not answer:
        return ""
    text = answer.strip()
    match = re.fullmatch(r"\\boxed\{(.*)\}", text)
    text = match.group(1) if match else text
    text = re.sub(r"\s+|\$|\\[,;!]|\\left|\\right", "", text).lower()
    return re.sub(r"^(-?\d+)\.0+$", r"\1", text)


@dataclass(frozen=True)
class ReviewItem:
    run_id: int
    model: str
    problem: str
    question: str
    reference: str | None
    extracted_answer: str | None
    completion: str
    sample_id: int


def review_set(session: Session, run_ids: Sequence[int], per_run: int = 20, seed: int = 0) -> list[ReviewItem]:
    """Up to ``per_run`` correct samples of each run, chosen at random with ``seed``: the same
    seed over the same data picks the same samples."""
    out = []
    for run_id in run_ids:
        rows = session.execute(
            select(schema.Sample.id, schema.Sample.text, schema.Problem.key, schema.Problem.question,
                   schema.Problem.answer, schema.Verdict.extracted_answer, schema.Model.name)
            .join(schema.Verdict, schema.Verdict.sample_id == schema.Sample.id)
            .join(schema.Problem, schema.Problem.id == schema.Sample.problem_id)
            .join(schema.Run, schema.Run.id == schema.Sample.run_id)
            .join(schema.Model, schema.Model.id == schema.Run.model_id)
            .where(schema.Sample.run_id == run_id, schema.Verdict.correct.is_(True))
            .order_by(schema.Sample.id)
        ).all()
        picked = random.Random(f"{seed}:{run_id}").sample(rows, min(per_run, len(rows)))
        out += [ReviewItem(run_id, r.name, r.key, r.question, r.answer, r.extracted_answer, r.text, r.id)
                for r in sorted(picked, key=lambda r: r.id)]
    return out


@dataclass(frozen=True)
class GuessRow:
    problem: str
    reference: str | None
    pass_at_k: float
    chance_pass_at_k: float
    guess_probability: float
    """Share of the model's extracted answers (all problems) that would be right here."""
    indistinguishable: bool

    def to_dict(self) -> dict:
        return asdict(self)


def guess_baseline(
    session: Session, run_id: int, k: int | None = None, margin: float = 0.05
) -> tuple[int, list[GuessRow]]:
    """Per problem of the run: its pass@k and the chance baseline's, at ``k`` (default: the
    largest k). A problem is flagged when the model beats guessing by less than ``margin``."""
    rows = session.execute(
        select(schema.Verdict.problem_id, schema.Verdict.extracted_answer, schema.Verdict.correct)
        .where(schema.Verdict.run_id == run_id)
    ).all()
    answers = Counter(normalize(r.extracted_answer) for r in rows)
    answers.pop("", None)
    total = sum(answers.values())
    accepted: dict[int, set[str]] = {}
    for r in rows:
        if r.correct and normalize(r.extracted_answer):
            accepted.setdefault(r.problem_id, set()).add(normalize(r.extracted_answer))
    problems = {p.id: p for p in session.scalars(select(schema.Problem).where(
        schema.Problem.id.in_({r.problem_id for r in rows})))}
    if k is None:
        k = max(k_grid(min(Counter(r.problem_id for r in rows).values()))) if rows else 1
    values = per_problem(session, [run_id], [k]).get((run_id, k), {})
    out = []
    for pid in sorted(values, key=lambda p: problems[p].position):
        forms = accepted.get(pid, set()) | {normalize(problems[pid].answer)} - {""}
        p_guess = sum(answers[f] for f in forms) / total if total else 0.0
        chance = 1.0 - (1.0 - p_guess) ** k
        out.append(GuessRow(problems[pid].key, problems[pid].answer, values[pid], chance, p_guess,
                            values[pid] > 0 and values[pid] - chance < margin))
    return k, out


@dataclass(frozen=True)
class Audit:
    """What `boundary audit` shows: per run, the review set and the guessing baseline (k, rows)."""

    runs: list[RunInfo]
    review: list[ReviewItem]
    baselines: dict[int, tuple[int, list[GuessRow]]]

    def review_records(self) -> list[dict]:
        return [asdict(item) for item in self.review]

    def to_dict(self, output: object | None = None) -> dict:
        """The review set itself, or where it was written (``output``), and the baselines."""
        return {"review": self.review_records() if not output else str(output),
                "baseline": {str(rid): {"k": k, "problems": [g.to_dict() for g in rows]}
                             for rid, (k, rows) in self.baselines.items()}}


def load_audit(
    db: Database, run_ids: Sequence[int] = (), per_run: int = 20, seed: int = 0, k: int | None = None
) -> Audit:
    """The audit of the runs asked for (default: all)."""
    with db.session() as session:
        runs = run_infos(session, run_ids)
        review = review_set(session, [r.run_id for r in runs], per_run, seed)
        return Audit(runs, review, {r.run_id: guess_baseline(session, r.run_id, k) for r in runs})
