"""pass@k and coverage from stored verdicts: hand-built runs with chosen correct counts, on
SQLite and PostgreSQL, checked against the numpy reference estimator."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable

import numpy as np
import pytest

from boundary.api.analysis.report import reports, run_report
from boundary.api.db import Database, schema
from boundary.api.render.export import to_csv
from boundary.api.samplers import sampler_spec
from tests.support.passk import numpy_reference

Cost = Callable[[int, int], dict]
"""(problem, sample index) -> the sample's cost columns (decoded_tokens, prefill_tokens, engine_calls,
sampler_stats)."""


def build_run(session, model: str, role: str, correct: list[int], n: int, graded: int | None = None,
              sampler: str = "plain", options: dict | None = None, cost: Cost | None = None, extra: int = 0) -> int:
    """A run over len(correct) problems with n samples each; problem i has correct[i] correct
    samples. Only the first ``graded`` samples of the last problem get verdicts. ``extra`` more
    samples per problem lie beyond n (what a report must not count)."""
    m = schema.Model(name=model, path=f"/models/{model}", role=role)
    b = session.query(schema.Benchmark).filter_by(name="toy").one_or_none()
    if b is None:
        b = schema.Benchmark(name="toy", version=1, kind="math", source="t", content_hash="h",
                             num_problems=len(correct))
    session.add_all([m, b])
    session.flush()
    spec = sampler_spec(sampler, options)
    run = schema.Run(model_id=m.id, benchmark_id=b.id, temperature=0.6, top_p=0.95, max_tokens=8, n=n, seed=0,
                     prompt_template="boxed", engine="vllm", engine_options={}, sampler=spec.name,
                     sampler_options=spec.canonical())
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
        for j in range(n + extra):
            spent = cost(i, j) if cost else {"decoded_tokens": 1, "engine_calls": 1}
            sample = schema.Sample(run_id=run.id, problem_id=p.id, sample_index=j, text="t", num_tokens=1, **spent)
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


def mcmc_cost(i: int, j: int) -> dict:
    """Sample j of problem i decoded 10 (j + 1) tokens in 2 (j + 1) calls, with 3 context tokens,
    and accepted j of its 4 proposals (sample 0 ran no MH step: no acceptance rate)."""
    return {"decoded_tokens": 10 * (j + 1), "prefill_tokens": 3, "engine_calls": 2 * (j + 1),
            "sampler_stats": {"proposals": 4 if j else 0, "accepted": j, "acceptance_rate": j / 4 if j else None}}


def smc_cost(i: int, j: int) -> dict:
    """An engine that counts no context tokens; j resamplings, final ESS 8 - j - i."""
    return {"decoded_tokens": 64, "prefill_tokens": None, "engine_calls": 8,
            "sampler_stats": {"particles": 8, "resamples": j, "final_ess": 8.0 - j - i}}


def beyond_n(cost: Cost, n: int) -> Cost:
    """``cost``, and a huge one for samples beyond n, which the means must leave out."""
    return lambda i, j: cost(i, j) if j < n else {"decoded_tokens": 10**6, "prefill_tokens": 10**6,
                                                  "engine_calls": 10**6, "sampler_stats": {"acceptance_rate": 99.0,
                                                                                           "resamples": 99,
                                                                                           "final_ess": 99.0}}


def test_the_report_carries_the_sampler_and_the_mean_cost_per_sample(database: Database) -> None:
    options = {"block_tokens": 32, "mcmc_steps": 2}
    with database.session() as s:
        plain = build_run(s, "plain-model", "base", [1, 2], n=4)
        mcmc = build_run(s, "mcmc-model", "base", [1, 2], n=4, sampler="power-mcmc", options=options,
                         cost=beyond_n(mcmc_cost, 4), extra=1)
        smc = build_run(s, "smc-model", "base", [1, 2], n=4, sampler="power-smc", options={"particles": 8},
                        cost=beyond_n(smc_cost, 4), extra=1)
    with database.session() as s:
        p, m, c = (run_report(s, rid) for rid in (plain, mcmc, smc))
    assert (p.sampler, p.sampler_options, p.sampler_label, p.mean_sampler_stats) == ("plain", {}, "plain", {})
    assert (p.mean_decoded_tokens, p.mean_prefill_tokens, p.mean_engine_calls) == (1.0, None, 1.0)
    assert m.sampler == "power-mcmc" and m.sampler_options == sampler_spec("power-mcmc", options).options
    assert m.sampler_label == "power-mcmc block_tokens=32 mcmc_steps=2"
    assert m.samples == 8  # the samples beyond n are neither counted nor averaged
    assert m.mean_decoded_tokens == pytest.approx(25.0)  # 10, 20, 30, 40 on each problem
    assert m.mean_prefill_tokens == pytest.approx(3.0) and m.mean_engine_calls == pytest.approx(5.0)
    assert m.mean_sampler_stats == {"acceptance_rate": pytest.approx(0.5)}  # 1/4, 2/4, 3/4; sample 0 has none
    assert c.mean_prefill_tokens is None  # not counted by its engine
    assert (c.mean_decoded_tokens, c.mean_engine_calls) == (64.0, 8.0)
    assert c.mean_sampler_stats == {"resamples": pytest.approx(1.5), "final_ess": pytest.approx(6.0)}
    assert all(isinstance(v, float) for v in (m.mean_decoded_tokens, m.mean_engine_calls))  # not Decimal

    data = json.loads(json.dumps(m.to_dict()))  # what `report --json` prints
    assert data["sampler"] == "power-mcmc" and data["sampler_options"]["block_tokens"] == 32
    assert data["sampler_label"] == m.sampler_label and data["mean_decoded_tokens"] == pytest.approx(25.0)
    assert data["mean_sampler_stats"] == {"acceptance_rate": pytest.approx(0.5)}

    rows = list(csv.DictReader(io.StringIO(to_csv([p, m, c]))))
    by_run = {r["run_id"]: r for r in rows if r["k"] == "1"}
    assert json.loads(by_run[str(mcmc)]["sampler_options"]) == m.sampler_options  # JSON text
    assert float(by_run[str(mcmc)]["mean_decoded_tokens"]) == pytest.approx(25.0)
    assert json.loads(by_run[str(smc)]["mean_sampler_stats"]) == {"resamples": 1.5, "final_ess": 6.0}
    assert by_run[str(smc)]["mean_prefill_tokens"] == "" and by_run[str(plain)]["sampler"] == "plain"
    assert by_run[str(plain)]["sampler_options"] == "{}"
