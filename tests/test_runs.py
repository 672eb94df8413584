"""Registering runs, benchmark versions and prompts, and deriving the missing work from the
database, on SQLite and PostgreSQL."""

from __future__ import annotations

from dataclasses import replace

import pytest
from sqlalchemy import func, select

from boundary.api.benchmarks import LoadedBenchmark
from boundary.api.db import Database, schema
from boundary.api.errors import ConfigError
from boundary.api.models import ModelSpec, resolve_model
from boundary.api.planning import missing_ranges, plan, sample_work
from boundary.api.runs import RunSpec, problem_seed, register
from boundary.api.types import Problem, SamplingConfig


def bench(answers: dict[str, str], name: str = "toy") -> LoadedBenchmark:
    problems = tuple(Problem(key=k, question=f"question {k}", answer=v, record={"id": k}) for k, v in answers.items())
    return LoadedBenchmark(name, "math", "test", problems)


def spec_for(benchmark: LoadedBenchmark, n: int = 4, model: ModelSpec | None = None, **sampling) -> RunSpec:
    config = SamplingConfig(**{"temperature": 0.6, "top_p": 0.95, "max_tokens": 16, "seed": 0, **sampling})
    return RunSpec(model or ModelSpec(name="m", path="/models/m"), benchmark, config, "boxed", "vllm", n)


def render(problem: Problem) -> str:
    return f"PROMPT {problem.question}"


@pytest.mark.parametrize(
    ("present", "n", "ranges"),
    [
        ([], 4, [(0, 4)]),
        ([0, 1, 2, 3], 4, []),
        ([0, 1], 4, [(2, 2)]),
        ([0, 2, 5], 6, [(1, 1), (3, 2)]),
        ([0, 1, 2, 3, 4, 5], 4, []),
        ([7], 8, [(0, 7)]),
    ],
)
def test_missing_ranges(present: list[int], n: int, ranges: list[tuple[int, int]]) -> None:
    assert missing_ranges(present, n) == ranges


def test_problem_seeds_are_stable_distinct_and_in_range() -> None:
    seeds = {problem_seed(0, f"p{i}") for i in range(1000)}
    assert len(seeds) == 1000
    assert all(0 <= s < 2**30 for s in seeds)
    assert problem_seed(0, "p1") == problem_seed(0, "p1")
    assert problem_seed(0, "p1") != problem_seed(1, "p1")


def test_register_plan_and_reuse(database: Database) -> None:
    b = bench({"a": "1", "b": "2", "c": "3"})
    spec = spec_for(b)
    with database.session() as s:
        assert plan(s, spec, b.problems).missing_samples == 12
        assert plan(s, spec, b.problems).run_id is None
    with database.session() as s:
        run_id, ids = register(s, spec, b.problems[:2], render)
    with database.session() as s:
        run_id_again, ids_again = register(s, spec, b.problems, render)
    assert run_id_again == run_id and ids_again["a"] == ids["a"]
    with database.session() as s:
        assert s.scalar(select(func.count()).select_from(schema.Run)) == 1
        assert s.scalar(select(func.count()).select_from(schema.Problem)) == 3
        prompts = dict(s.execute(select(schema.RunProblem.problem_id, schema.RunProblem.prompt)).all())
        assert prompts[ids_again["c"]] == "PROMPT question c"
        run, work = sample_work(s, run_id, list(ids_again.values()))
        assert [w.ranges for w in work] == [((0, 4),)] * 3
        assert work[0].seed == problem_seed(0, "a")


def test_top_up_raises_n_and_only_asks_for_the_rest(database: Database) -> None:
    b = bench({"a": "1"})
    with database.session() as s:
        run_id, ids = register(s, spec_for(b, n=2), b.problems, render)
        for i in range(2):
            s.add(schema.Sample(run_id=run_id, problem_id=ids["a"], sample_index=i, text="x", num_tokens=1))
    with database.session() as s:
        assert plan(s, spec_for(b, n=2), b.problems).missing_samples == 0
        assert plan(s, spec_for(b, n=5), b.problems).missing_samples == 3
        register(s, spec_for(b, n=5), b.problems, render)
    with database.session() as s:
        run, work = sample_work(s, run_id, [ids["a"]])
        assert run.n == 5 and work[0].ranges == ((2, 3),)
    with database.session() as s:  # asking for fewer later never shrinks the run
        register(s, spec_for(b, n=1), b.problems, render)
        assert s.get(schema.Run, run_id).n == 5


def test_stored_prompt_is_kept(database: Database) -> None:
    b = bench({"a": "1"})
    with database.session() as s:
        run_id, ids = register(s, spec_for(b), b.problems, render)
    with database.session() as s:
        register(s, spec_for(b), b.problems, lambda p: "SOMETHING ELSE")
        assert s.get(schema.RunProblem, (run_id, ids["a"])).prompt == "PROMPT question a"


def test_different_sampling_parameters_are_different_runs(database: Database) -> None:
    b = bench({"a": "1"})
    with database.session() as s:
        r1, _ = register(s, spec_for(b, temperature=0.6), b.problems, render)
        r2, _ = register(s, spec_for(b, temperature=1.0), b.problems, render)
        r3, _ = register(s, replace(spec_for(b), template="qwen-boxed"), b.problems, render)
    assert len({r1, r2, r3}) == 3


def test_changed_dataset_becomes_a_new_version(database: Database) -> None:
    old = bench({"a": "1", "b": "2"})
    new = bench({"a": "1", "b": "20"})  # one reference answer corrected
    with database.session() as s:
        r_old, ids_old = register(s, spec_for(old), old.problems, render)
    with database.session() as s:
        notice = plan(s, spec_for(new), new.problems).benchmark_notice
        assert notice is not None and "stored as version 2" in notice
        r_new, ids_new = register(s, spec_for(new), new.problems, render)
    assert r_new != r_old and ids_new["b"] != ids_old["b"]
    with database.session() as s:
        versions = sorted(s.scalars(select(schema.Benchmark.version).where(schema.Benchmark.name == "toy")).all())
        assert versions == [1, 2]
        assert plan(s, spec_for(old), old.problems).benchmark_notice is None


def test_model_name_conflicts_are_refused(database: Database) -> None:
    b = bench({"a": "1"})
    with database.session() as s:
        register(s, spec_for(b, model=ModelSpec(name="m", path="/models/m", role="base")), b.problems, render)
    with database.session() as s, pytest.raises(ConfigError, match="registered for /models/m"):
        plan(s, spec_for(b, model=ModelSpec(name="m", path="/models/other")), b.problems)
    with database.session() as s, pytest.raises(ConfigError, match="registered with role 'base', not 'rlvr'"):
        plan(s, spec_for(b, model=ModelSpec(name="m", path="/models/m", role="rlvr")), b.problems)
    with database.session() as s:  # no role given: the stored role stands
        assert plan(s, spec_for(b, model=ModelSpec(name="m", path="/models/m")), b.problems).missing_samples == 4


def test_alias_resolution() -> None:
    spec = resolve_model("smollm2-135m")
    assert spec.gguf is not None and spec.default_role == "instruct" and spec.role is None
    assert resolve_model("smollm2-135m", role="base", alias="smol-base").name == "smol-base"
    assert resolve_model("Qwen/Qwen2.5-7B").path == "Qwen/Qwen2.5-7B"
    with pytest.raises(ConfigError, match="unknown model 'gpt-17'"):
        resolve_model("gpt-17")
    with pytest.raises(ConfigError, match="unknown model role"):
        resolve_model("smollm2-135m", role="teacher")


def test_sampling_config_validation() -> None:
    with pytest.raises(ConfigError, match="temperature must be >= 0"):
        SamplingConfig(-0.1, 0.9, 8, 0)
    for top_p in (0.0, 1.01, -1):
        with pytest.raises(ConfigError, match=r"top_p must be in \(0, 1\]"):
            SamplingConfig(0.6, top_p, 8, 0)
    with pytest.raises(ConfigError, match="max_tokens"):
        SamplingConfig(0.6, 0.9, 0, 0)
    with pytest.raises(ConfigError, match="k \\(samples per problem\\) must be >= 1"):
        spec_for(bench({"a": "1"}), n=0)


def test_a_grading_batch_never_published_is_published_on_redelivery(database: Database) -> None:
    """A sampling worker that dies after recording its batch done, before publishing the
    grading batch, leaves that batch queued with no message: the redelivered sampling message
    publishes it, once, and not after it has been delivered."""
    from boundary.api.batch_state import plan_run
    from boundary.workers.delivery import run_grade_batch, run_sample_batch
    from boundary.workers.engines.echo import EchoEngine
    from boundary.workers.graders.math import MathGrader

    b = bench({"a": "1", "b": "2"})
    spec = replace(spec_for(b, n=2), engine="echo")
    with database.session() as s:
        run_id, _ = register(s, spec, b.problems, render)
        (batch,) = plan_run(s, run_id, batch_samples=8)
    engine = EchoEngine()
    first = run_sample_batch(database, lambda: engine, batch.batch_id, model_name="m", engine_name="echo")
    assert [q.kind for q in first] == ["grade"]  # ... and the worker dies before publishing it
    again = run_sample_batch(database, lambda: engine, batch.batch_id, model_name="m", engine_name="echo")
    assert again == first
    with MathGrader() as grader:
        assert run_grade_batch(database, lambda kind: grader, first[0].batch_id) == 4
    assert run_sample_batch(database, lambda: engine, batch.batch_id, model_name="m", engine_name="echo") == []
    with database.session() as s:
        assert s.scalar(select(func.count()).select_from(schema.Sample)) == 4
        assert s.scalar(select(func.count()).select_from(schema.Batch).where(schema.Batch.kind == "grade")) == 1
