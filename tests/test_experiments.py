"""Experiment files, `submit` without a broker (the embedded mode), batches in the database,
and the front end's errors: all before or without worker processes."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from boundary.api.batch_state import claim, failed_problems, finish, plan_run, record_error
from boundary.api.cli import cli
from boundary.api.db import Database, schema
from boundary.api.errors import ConfigError, DataError
from boundary.api.experiments import from_flags, load_file, parse, register_experiment, resolve_all

GOOD = """\
name: roles
n: 4
temperatures: [0.6, 1.0]
max_tokens: 16
batch_size: 8
benchmarks:
  - {name: arith, limit: 5}
models:
  - {name: a-base, model: smollm2-135m, role: base, template: boxed, engine: echo}
  - {name: a-rl, model: smollm2-135m, role: rlvr, engine: echo, n: 2}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "experiment.yaml"
    path.write_text(text)
    return path


def test_models_times_benchmarks_times_temperatures(tmp_path: Path) -> None:
    exp = load_file(write(tmp_path, GOOD))
    assert exp.name == "roles" and exp.batch_size == 8
    assert [(r.model_name, r.temperature, r.n, r.template) for r in exp.requests] == [
        ("a-base", 0.6, 4, "boxed"), ("a-base", 1.0, 4, "boxed"), ("a-rl", 0.6, 2, None), ("a-rl", 1.0, 2, None),
    ]
    assert exp.spec_hash == load_file(write(tmp_path, GOOD)).spec_hash


def test_flags_make_the_same_experiment_as_a_file(tmp_path: Path) -> None:
    from_file = load_file(write(tmp_path, "name: x\nn: 4\nbenchmarks: [arith]\n"
                                          "models:\n  - {model: smollm2-135m, role: base}\n"))
    flags = from_flags("x", ["smollm2-135m"], ["base"], ["arith"], [], n=4)
    assert flags.spec == from_file.spec


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("name: x\nbenchmarks: [arith]\nmodels:\n  - {model: m, rol: base}\n", r":4: models\[0\]\.rol: unknown key"),
        ("name: x\nbenchmarks: [arith]\nmodels:\n  - {model: m, role: teacher}\n",
         r":4: models\[0\]\.role: 'teacher' is not one of"),
        ("name: x\nbenchmarks: [arith]\nmodels:\n  - {role: base}\n", r":4: models\[0\]\.model: missing"),
        ("name: x\nbenchmarks: []\nmodels:\n  - {model: m}\n", r":1: benchmarks: missing or empty"),
        ("name: x\nn: eight\nbenchmarks: [arith]\nmodels:\n  - {model: m}\n", r":1: n: must be a whole number"),
        ("name: x\nbenchmarks: [arith\nmodels: []\n", r":\d+: not valid YAML"),
        ("- just\n- a list\n", r": an experiment is a mapping"),
        ("name: x\nbenchmarks: [{name: arith, limt: 3}]\nmodels:\n  - {model: m}\n",
         r":2: benchmarks\[0\]\.limt: unknown key"),
    ],
)
def test_malformed_files_say_where(tmp_path: Path, text: str, where: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(DataError, match=re.escape(str(path)) + where):
        load_file(path)


def test_unknown_model_or_benchmark_is_caught_before_anything_is_written() -> None:
    exp = parse({"name": "x", "benchmarks": ["gsm9k"], "models": [{"model": "smollm2-135m"}]})
    with pytest.raises(ConfigError, match="unknown benchmark 'gsm9k'"):
        resolve_all(exp, None)
    exp = parse({"name": "x", "benchmarks": ["arith"], "models": [{"model": "no-such-model"}]})
    with pytest.raises(ConfigError, match="unknown model 'no-such-model'"):
        resolve_all(exp, None)


def test_register_twice_reuses_and_a_changed_experiment_is_refused(database: Database, tmp_path: Path) -> None:
    exp = load_file(write(tmp_path, GOOD))
    with database.session() as s:
        _, first = register_experiment(s, exp, resolve_all(exp, None))
    with database.session() as s:
        _, again = register_experiment(s, exp, resolve_all(exp, None))
        assert again == first and len(first) == 4
        assert s.scalar(select(func.count()).select_from(schema.Run)) == 4
        # a chat-template prompt waits for the worker; the others are rendered now
        prompts = s.execute(select(schema.Run.prompt_template, schema.RunProblem.prompt).join(
            schema.RunProblem, schema.RunProblem.run_id == schema.Run.id)).all()
        assert {t for t, p in prompts if p is None} == set() and all(p for _, p in prompts)
    changed = load_file(write(tmp_path, GOOD.replace("max_tokens: 16", "max_tokens: 32")))
    with database.session() as s, pytest.raises(ConfigError, match="already exists with other runs"):
        register_experiment(s, changed, resolve_all(changed, None))


def test_batches_plan_claim_and_count_deliveries(database: Database, tmp_path: Path) -> None:
    exp = load_file(write(tmp_path, GOOD))
    with database.session() as s:
        _, run_ids = register_experiment(s, exp, resolve_all(exp, None))
        queued = plan_run(s, run_ids[0], batch_samples=8)  # n=4: 2 problems per batch, 5 problems
    assert [q.kind for q in queued] == ["sample"] * 3 and {q.queue for q in queued} == {"sample.a-base"}
    batch = queued[0].batch_id
    with database.session() as s:
        assert claim(s, batch, max_attempts=2).attempts == 1
    with database.session() as s:
        record_error(s, batch, "boom", final=False)
        assert claim(s, batch, max_attempts=2).attempts == 2
    with database.session() as s:
        assert claim(s, batch, max_attempts=2) is None  # third delivery: refused and failed
    with database.session() as s:
        row = s.get(schema.Batch, batch)
        assert (row.status, row.attempts) == ("failed", 3)
        assert row.error.startswith("gave up after 2 deliveries that stored nothing: boom")
        assert set(failed_problems(s, run_ids[0])) == set(row.problem_ids)
        finish(s, queued[1].batch_id)
    with database.session() as s:
        assert claim(s, queued[1].batch_id, max_attempts=2) is None  # done: nothing to do
        assert claim(s, 10**6, max_attempts=2) is None  # unknown id


def test_submit_without_a_broker_runs_the_experiment_here(tmp_path: Path) -> None:
    db_file = tmp_path / "here.db"
    path = write(tmp_path, GOOD)
    result = CliRunner().invoke(cli, ["submit", str(path), "--database-url", f"sqlite:///{db_file}", "--json", "-q"])
    assert result.exit_code == 0, result.output
    reports = json.loads(result.stdout)
    assert len(reports) == 4 and all(not r["partial"] for r in reports)
    assert sorted((r["model"], r["n"], r["graded"]) for r in reports) == [
        ("a-base", 4, 20), ("a-base", 4, 20), ("a-rl", 2, 10), ("a-rl", 2, 10)]
    again = CliRunner().invoke(cli, ["submit", str(path), "--database-url", f"sqlite:///{db_file}", "--json", "-q"])
    assert json.loads(again.stdout) == reports  # reused: nothing drawn twice


def test_submit_refuses_bad_input_and_writes_nothing(tmp_path: Path, postgres_url: str) -> None:
    runner = CliRunner()
    assert runner.invoke(cli, ["db", "upgrade", "--database-url", postgres_url]).exit_code == 0
    path = write(tmp_path, GOOD)

    def submit(*args: str):
        return runner.invoke(cli, ["submit", *args, "--database-url", postgres_url])

    down = submit(str(path), "--broker-url", "redis://127.0.0.1:1/0")
    assert down.exit_code == 1 and down.stderr.startswith("Error: cannot connect to broker redis://127.0.0.1:1/0")
    broken = write(tmp_path, GOOD.replace("role: base", "role: boss"))
    bad = submit(str(broken), "--broker-url", "redis://127.0.0.1:1/0")
    assert bad.exit_code == 1 and f"{broken}:9: models[0].role" in bad.stderr
    both = submit(str(path), "--model", "x")
    assert both.exit_code == 1 and "not both" in both.stderr
    for result in (down, bad, both):
        assert len(result.stderr.strip().splitlines()) == 1
    engine = Database.connect(postgres_url).engine
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(schema.Experiment.__table__)).scalar() == 0
        assert conn.execute(select(func.count()).select_from(schema.Run.__table__)).scalar() == 0
    engine.dispose()


def test_resume_and_status_errors(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}"
    missing = CliRunner().invoke(cli, ["resume", "nope", "--database-url", url, "--broker-url", "redis://127.0.0.1:6379/0"])
    assert missing.exit_code == 1 and "no experiment named 'nope'" in missing.stderr
    no_broker = CliRunner().invoke(cli, ["resume", "nope", "--database-url", url], env={"BOUNDARY_BROKER_URL": ""})
    assert no_broker.exit_code == 2 and "--broker-url" in no_broker.stderr
    empty = CliRunner().invoke(cli, ["status", "--json", "--database-url", url])
    assert empty.exit_code == 0 and json.loads(empty.stdout) == []


def test_submit_flags_name_samplers_and_route_their_options(tmp_path: Path) -> None:
    from_file = load_file(write(tmp_path, "name: x\nn: 4\ntemperatures: [0.6, 1.0]\nbenchmarks: [arith]\n"
                                          "models:\n  - {model: smollm2-135m, role: base}\n"
                                          "samplers: [plain, {name: power-mcmc, alpha: 2, block_tokens: 32},"
                                          " {name: power-smc, alpha: 2, block_tokens: 32, particles: 8}]\n"))
    flags = from_flags("x", ["smollm2-135m"], ["base"], ["arith"], [0.6, 1.0], ["plain", "power-mcmc", "power-smc"],
                       {"alpha": "2", "block_tokens": "32", "particles": "8"}, n=4)
    assert flags.spec == from_file.spec  # -S values are typed as the sampler reads them, like the file's
    # plain runs multiply by temperature; block_tokens and alpha go to both power samplers, particles to one
    assert [(r.sampler, r.temperature, r.sampler_options) for r in flags.requests] == [
        ("plain", 0.6, {}), ("plain", 1.0, {}), ("power-mcmc", None, {"alpha": 2.0, "block_tokens": 32}),
        ("power-smc", None, {"alpha": 2.0, "block_tokens": 32, "particles": 8})]
    plain = from_flags(None, ["smollm2-135m"], [], ["arith"], [], ["plain"], {})
    assert plain.spec == from_flags(None, ["smollm2-135m"], [], ["arith"], []).spec  # plain is the default
    named = from_flags(None, ["smollm2-135m"], [], ["arith"], [], ["power-mcmc"], {})
    assert named.name == "smollm2-135m-arith-power-mcmc" and plain.name == "smollm2-135m-arith"


def test_an_entry_option_only_another_power_sampler_takes_is_left_out(tmp_path: Path) -> None:
    exp = load_file(write(tmp_path, "name: x\nbenchmarks: [arith]\nmodels:\n  - {model: smollm2-135m}\n"
                                    "samplers: [{name: power-smc, particles: 4, mcmc_steps: 2}]\n"))
    assert [(r.sampler, r.sampler_options) for r in exp.requests] == [("power-smc", {"particles": 4})]


@pytest.mark.parametrize(("samplers", "options", "common", "message"), [
    (["power-smc"], {"mcmc_steps": "2"}, {}, "no sampler given takes option(s) mcmc_steps (samplers: power-smc"),
    ([], {"alpha": "2"}, {}, "no sampler given takes option(s) alpha (samplers: plain; plain takes none)"),
    (["power-mcmc"], {"block_tokens": "0"}, {}, "power-mcmc option block_tokens must be >= 1, got 0"),
    (["power-mcmc"], {"alpha": "x"}, {}, "power-mcmc option alpha must be a number"),
    (["gibbs"], {}, {}, "unknown sampler 'gibbs'"),
    (["power-mcmc"], {}, {"temperatures": [0.6]}, "--temperature is the plain sampler's; power-mcmc draw(s)"),
    (["power-smc"], {}, {"top_p": 0.9}, "--top-p is the plain sampler's"),
])
def test_bad_sampler_flags_are_refused(samplers: list[str], options: dict, common: dict, message: str) -> None:
    temperatures = common.pop("temperatures", [])
    with pytest.raises((ConfigError, DataError)) as caught:
        from_flags(None, ["smollm2-135m"], [], ["arith"], temperatures, samplers, options, **common)
    assert message in str(caught.value)


def test_submit_with_sampler_flags_runs_each_sampler_and_reports_its_cost(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'here.db'}"
    args = ["submit", "--model", "smollm2-135m", "--role", "base", "--benchmark", "arith", "--engine", "echo", "-k",
            "2", "--max-tokens", "16", "--sampler", "plain", "--sampler", "power-mcmc", "--sampler", "power-smc",
            "-S", "block_tokens=4", "-S", "mcmc_steps=2", "-S", "particles=3", "--database-url", url, "-q"]
    result = CliRunner().invoke(cli, [*args, "--json"])
    assert result.exit_code == 0, result.output
    reports = {r["sampler"]: r for r in json.loads(result.stdout)}
    assert reports["power-mcmc"]["sampler_label"] == "power-mcmc block_tokens=4 mcmc_steps=2"
    assert reports["power-smc"]["sampler_label"] == "power-smc block_tokens=4 particles=3"
    assert reports["plain"]["mean_engine_calls"] == 1.0 and reports["plain"]["mean_sampler_stats"] == {}
    # a power sample asks the engine many times: its blocks, and its MH proposals or its particles
    assert reports["power-mcmc"]["mean_engine_calls"] > 1 and reports["power-smc"]["mean_engine_calls"] >= 3
    assert set(reports["power-mcmc"]["mean_sampler_stats"]) == {"acceptance_rate"}
    assert set(reports["power-smc"]["mean_sampler_stats"]) == {"resamples", "final_ess"}
    table = CliRunner().invoke(cli, args)
    assert table.exit_code == 0, table.output
    assert "tok/sample" in table.stdout and "power-smc block_tokens=4 particles=3" in table.stdout
    status = CliRunner().invoke(cli, ["status", "--json", "--database-url", url])
    assert sorted(s["sampler"] for s in json.loads(status.stdout)) == [
        "plain", "power-mcmc block_tokens=4 mcmc_steps=2", "power-smc block_tokens=4 particles=3"]
    once = CliRunner().invoke(cli, ["status", "--once", "--database-url", url])
    assert once.exit_code == 0 and "power-mcmc block_tokens=4 mcmc_steps=2" in once.stdout


def test_submit_refuses_an_option_no_sampler_takes_and_writes_nothing(tmp_path: Path) -> None:
    db_file = tmp_path / "x.db"
    result = CliRunner().invoke(cli, ["submit", "--model", "smollm2-135m", "--benchmark", "arith", "--sampler",
                                      "power-smc", "-S", "mcmc_steps=2", "--database-url", f"sqlite:///{db_file}"])
    assert result.exit_code == 1 and len(result.stderr.strip().splitlines()) == 1
    assert "no sampler given takes option(s) mcmc_steps" in result.stderr
    assert not db_file.exists()
    both = CliRunner().invoke(cli, ["submit", str(write(tmp_path, GOOD)), "--sampler", "power-mcmc",
                                    "--database-url", f"sqlite:///{db_file}"])
    assert both.exit_code == 1 and "not both" in both.stderr
