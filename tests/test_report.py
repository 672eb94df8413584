"""pass@k and coverage from stored verdicts: hand-built runs with chosen correct counts, on
SQLite and PostgreSQL, checked against the numpy reference estimator."""

from __future__ import annotations

import csv
import io

import numpy as np
import pytest

from boundary.api.analysis.report import reports, run_report
from boundary.api.db import Database, schema
from boundary.api.render.export import to_csv
from tests.support.passk import numpy_reference


def build_run(session, model: str, role: str, correct: list[int], n: int, graded: int | None = None) -> int:
    """A run over len(correct) problems with n samples each; problem i has correct[i] correct
    samples. Only the first ``graded`` samples of the last problem get verdicts."""
    m = schema.Model(name=model, path=f"/models/{model}", role=role)
    b = session.query(schema.Benchmark).filter_by(name="toy").one_or_none()
    if b is None:
        b = schema.Benchmark(name="toy", version=1, kind="math", source="t", content_hash="h",
                             num_problems=len(correct))
    session.add_all([m, b])
    session.flush()
    run = schema.Run(model_id=m.id, benchmark_id=b.id, temperature=0.6, top_p=0.95, max_tokens=8, n=n, seed=0,
                     prompt_template="boxed", engine="vllm", engine_options={})
    session.add(run)
    session.flush()
    for i, c in enumerate(correct):
        p = session.query(schema.Problem).filter_by(benchmark_id=b.id, key=f"p{i}").one_or_none()
        if p is None:
            p = schema.Problem(benchmark_id=b.id, position=i, key=f"p{i}", question="?", answer="1", record={},
                               content_hash="x")
            session.add(p)
            session.flush()
        session.add(schema.RunProblem(run_id=run.id, problem_id=p.id, prompt="?", seed=i))
        last = i == len(correct) - 1
        for j in range(n):
            sample = schema.Sample(run_id=run.id, problem_id=p.id, sample_index=j, text="t", num_tokens=1)
            session.add(sample)
            session.flush()
            if last and graded is not None and j >= graded:
                continue
            session.add(schema.Verdict(sample_id=sample.id, run_id=run.id, problem_id=p.id, correct=j < c, grader="g",
                                       grader_version="1", duration_s=0.0))
    session.flush()
    return run.id


def expected(correct: list[int], n: int, k: int) -> float:
    return float(np.mean([numpy_reference(n, c, k) for c in correct]))


def test_pass_at_k_matches_numpy_on_a_hand_built_run(database: Database) -> None:
    correct = [0, 1, 8]
    with database.session() as s:
        run_id = build_run(s, "base-model", "base", correct, n=8)
    with database.session() as s:
        r = run_report(s, run_id)
    assert sorted(r.pass_at_k) == [1, 2, 4, 8]
    for k, value in r.pass_at_k.items():
        assert value == pytest.approx(expected(correct, 8, k), abs=1e-12)
    assert r.pass_at_k[1] == pytest.approx(9 / 24)  # hand-computed: 9 correct of 24
    assert r.coverage == pytest.approx(2 / 3)  # two of three problems ever solved
    assert (r.problems, r.samples, r.graded, r.correct, r.partial) == (3, 24, 24, 9, False)


def test_two_models_and_long_csv(database: Database) -> None:
    with database.session() as s:
        build_run(s, "base-model", "base", [0, 2, 4], n=4)
        build_run(s, "rl-model", "rlvr", [0, 4, 4], n=4)
    with database.session() as s:
        items = reports(s)
        only_rl = reports(s, model="rl-model")
    assert [r.model for r in items] == ["base-model", "rl-model"]
    assert [r.role for r in only_rl] == ["rlvr"]
    assert items[0].pass_at_k[1] == pytest.approx(6 / 12) and items[1].pass_at_k[1] == pytest.approx(8 / 12)
    assert items[0].coverage == items[1].coverage == pytest.approx(2 / 3)
    rows = list(csv.DictReader(io.StringIO(to_csv(items))))
    assert len(rows) == 6  # k = 1, 2, 4 for each run
    assert {(r["model"], r["k"]) for r in rows} >= {("base-model", "1"), ("rl-model", "4")}
    assert float(rows[0]["pass_at_k"]) == pytest.approx(0.5)


def test_ungraded_samples_make_a_run_partial(database: Database) -> None:
    with database.session() as s:
        run_id = build_run(s, "m", "base", [1, 1], n=4, graded=2)
    with database.session() as s:
        r = run_report(s, run_id)
    assert r.partial and r.graded == 6 and r.samples == 8
    assert sorted(r.pass_at_k) == [1, 2]  # k stops at the smallest graded n


def test_unknown_run_is_an_error(database: Database) -> None:
    from boundary.api.errors import NotFound

    with database.session() as s, pytest.raises(NotFound, match="no run with id 42"):
        reports(s, [42])
