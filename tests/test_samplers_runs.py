"""Power-sampling runs as a user runs them: the sampler in the run's identity, top-ups and reruns
that reproduce one larger run, what each sample cost, bad input, and a power batch through a
real fleet worker. The echo engine's token-level interface (a small Markov chain with exact
log-probabilities) stands in for a model: what is tested here is everything around the engine."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine, text

from boundary.api.cli import cli
from tests.support.fleet import Fleet, assert_exactly, wait_until

ECHO = ["--model", "smollm2-135m", "--engine", "echo", "--benchmark", "arith", "--limit", "3", "-q"]
MCMC = ["--sampler", "power-mcmc", "-S", "block_tokens=4", "-S", "mcmc_steps=3", "--max-tokens", "16"]


def boundary(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def stored(url: str) -> dict[tuple[str, int], tuple]:
    engine = create_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT p.key, s.sample_index, s.text, s.num_tokens, s.decoded_tokens, s.prefill_tokens, s.engine_calls, "
            "s.sampler_stats FROM samples s JOIN problems p ON p.id = s.problem_id")).all()
    engine.dispose()
    out = {}
    for r in rows:
        values = list(r[2:])
        values[5] = json.loads(values[5]) if isinstance(values[5], str) else values[5]  # JSON as text on SQLite
        out[(r[0], r[1])] = tuple(values)
    return out


def test_power_mcmc_top_up_and_rerun_reproduce_one_larger_run(db_url: str, tmp_path: Path) -> None:
    assert boundary("db", "upgrade", "--database-url", db_url).exit_code == 0
    first = boundary("run", *ECHO, *MCMC, "-k", "2", "--database-url", db_url, "--json")
    assert first.exit_code == 0, first.output
    assert json.loads(first.stdout)["drawn"] == 6
    again = boundary("run", *ECHO, *MCMC, "-k", "2", "--database-url", db_url, "--json")
    assert json.loads(again.stdout)["drawn"] == 0  # the same run: its identity includes the sampler
    topped = boundary("run", *ECHO, *MCMC, "-k", "4", "--database-url", db_url, "--json")
    assert json.loads(topped.stdout)["drawn"] == 6
    fresh_url = f"sqlite:///{tmp_path / 'fresh.db'}"
    fresh = boundary("run", *ECHO, *MCMC, "-k", "4", "--database-url", fresh_url, "--json")
    assert fresh.exit_code == 0
    assert stored(db_url) == stored(fresh_url) and len(stored(fresh_url)) == 12
    for _, num_tokens, decoded, prefill, calls, stats in stored(fresh_url).values():
        # each block's extension and each of the 3 MH steps per stage is a call; decoding counts
        # rejected proposals; a context holds at least the one prompt token
        assert decoded >= num_tokens and prefill >= calls
        assert 1 <= calls - stats["proposals"] <= 16 // 4 and stats["proposals"] % 3 == 0
        assert 0 <= stats["accepted"] <= stats["proposals"]


def test_samplers_are_separate_runs_and_each_sample_records_its_cost(sqlite_url: str) -> None:
    smc = ["--sampler", "power-smc", "-S", "particles=4", "-S", "block_tokens=4", "--max-tokens", "16"]
    for extra in ([], MCMC, smc):
        result = boundary("run", *ECHO, *extra, "-k", "2", "--database-url", sqlite_url)
        assert result.exit_code == 0, result.output
    engine = create_engine(sqlite_url)
    with engine.connect() as conn:
        runs = conn.execute(text("SELECT id, sampler, sampler_options, temperature, top_p, max_tokens FROM runs "
                                 "ORDER BY id")).all()
        costs = dict(conn.execute(text(
            "SELECT r.sampler, avg(s.decoded_tokens * 1.0 / s.num_tokens) FROM samples s "
            "JOIN runs r ON r.id = s.run_id GROUP BY r.sampler")).all())
        smc_stats = conn.execute(text(
            "SELECT s.sampler_stats, s.engine_calls FROM samples s JOIN runs r ON r.id = s.run_id "
            "WHERE r.sampler = 'power-smc'")).all()
        plain = conn.execute(text(
            "SELECT s.decoded_tokens, s.num_tokens, s.engine_calls, s.sampler_stats, s.prefill_tokens, rp.prompt "
            "FROM samples s JOIN runs r ON r.id = s.run_id JOIN run_problems rp ON rp.run_id = s.run_id "
            "AND rp.problem_id = s.problem_id WHERE r.sampler = 'plain'")).all()
    engine.dispose()
    assert [r[1] for r in runs] == ["plain", "power-mcmc", "power-smc"]
    assert runs[0][2] == "{}" and (runs[0][3], runs[0][4], runs[0][5]) == (0.6, 0.95, 1024)
    mcmc_options = json.loads(runs[1][2])
    assert mcmc_options == {"alpha": 4.0, "block_tokens": 4, "mcmc_steps": 3, "proposal_temperature": 0.25,
                            "top_k": 0, "top_p": 1.0}
    assert (runs[1][3], runs[1][4], runs[1][5]) == (0.25, 1.0, 16)  # the proposal's temperature and top-p
    # a plain sample: its own tokens, one call, its prompt's tokens (the echo engine counts words)
    assert all(d == n and c == 1 and s is None and p == len(prompt.split()) for d, n, c, s, p, prompt in plain)
    assert costs["power-mcmc"] > 1 and costs["power-smc"] >= 1
    for stats, calls in smc_stats:
        stats = json.loads(stats)
        assert stats["particles"] == 4 and 1 <= stats["final_ess"] <= 4 and calls >= 4


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--sampler", "gibbs"], "unknown sampler 'gibbs' (known: plain, power-mcmc, power-smc)"),
        (["--sampler", "power-mcmc", "-S", "beta=2"], "unknown power-mcmc option(s): beta"),
        (["--sampler", "power-mcmc", "-S", "particle=4"], "unknown power-mcmc option(s): particle"),
        (["--sampler", "power-mcmc", "-S", "alpha=0"], "power-mcmc option alpha must be > 0, got 0"),
        (["--sampler", "power-mcmc", "-S", "alpha=-1"], "power-mcmc option alpha must be > 0, got -1"),
        (["--sampler", "power-mcmc", "-S", "alpha=four"], "power-mcmc option alpha must be a number"),
        (["--sampler", "power-mcmc", "-S", "block_tokens=0"], "power-mcmc option block_tokens must be >= 1, got 0"),
        (["--sampler", "power-smc", "-S", "particles=0"], "power-smc option particles must be >= 1, got 0"),
        (["--sampler", "power-smc", "-S", "ess_threshold=2"], "power-smc option ess_threshold must be in [0, 1]"),
        (["--sampler", "power-smc", "-S", "block_tokens=2.5"], "power-smc option block_tokens must be an integer"),
        (["--sampler", "power-smc", "-S", "alpha"], "a sampler option is KEY=VALUE, got 'alpha'"),
        (["-S", "alpha=2"], "the plain sampler takes no options (got alpha)"),
        (["--sampler", "power-mcmc", "--temperature", "0.6"], "--temperature is the plain sampler's; power-mcmc"),
        (["--sampler", "power-smc", "--top-p", "0.9"], "--top-p is the plain sampler's; power-smc draws its proposals"),
    ],
)
def test_bad_sampler_input_is_one_line_and_writes_nothing(extra: list[str], message: str, tmp_path: Path) -> None:
    db_file = tmp_path / "x.db"
    result = CliRunner().invoke(cli, ["run", *ECHO, *extra, "--database-url", f"sqlite:///{db_file}"])
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("Error: ") and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert message in result.stderr
    assert not db_file.exists()


def test_an_option_of_the_other_power_sampler_is_left_out_with_a_note(sqlite_url: str) -> None:
    """The issue's two commands differ only in --sampler: power-smc has no mcmc_steps."""
    result = boundary("run", *ECHO, "--sampler", "power-smc", "-S", "block_tokens=4", "-S", "mcmc_steps=2",
                      "-S", "particles=3", "--max-tokens", "16", "-k", "1", "--database-url", sqlite_url)
    assert result.exit_code == 0, result.output
    assert "note: power-smc does not use -S mcmc_steps (an option of power-mcmc); left out" in result.stderr
    engine = create_engine(sqlite_url)
    with engine.connect() as conn:
        options = json.loads(conn.execute(text("SELECT sampler_options FROM runs")).scalar_one())
    engine.dispose()
    assert "mcmc_steps" not in options and options["particles"] == 3


def test_an_experiment_file_has_a_samplers_axis(tmp_path: Path, sqlite_url: str) -> None:
    exp = tmp_path / "sharp.yaml"
    exp.write_text(
        "name: sharp\nn: 2\nmax_tokens: 16\ntemperatures: [0.6, 1.0]\n"
        "samplers: [plain, {name: power-mcmc, block_tokens: 4, mcmc_steps: 2}, {name: power-smc, particles: 3}]\n"
        "benchmarks:\n  - {name: arith, limit: 2}\n"
        "models:\n  - {name: sharp-base, model: smollm2-135m, role: base, engine: echo}\n")
    result = CliRunner().invoke(cli, ["submit", str(exp), "--database-url", sqlite_url, "-q", "--json"])
    assert result.exit_code == 0, result.output
    reports = json.loads(result.stdout)
    assert len(reports) == 4  # plain at two temperatures, one run per power sampler
    engine = create_engine(sqlite_url)
    with engine.connect() as conn:
        runs = conn.execute(text("SELECT sampler, temperature FROM runs ORDER BY id")).all()
    engine.dispose()
    assert [tuple(r) for r in runs] == [("plain", 0.6), ("plain", 1.0), ("power-mcmc", 0.25), ("power-smc", 0.25)]
    bad = tmp_path / "bad.yaml"
    bad.write_text(exp.read_text().replace("particles: 3", "particles: 0"))
    refused = CliRunner().invoke(cli, ["submit", str(bad), "--database-url", f"sqlite:///{tmp_path / 'y.db'}"])
    assert refused.exit_code == 1 and "samplers[2]: power-smc option particles must be >= 1" in refused.stderr
    assert not (tmp_path / "y.db").exists()


def test_a_power_batch_through_a_real_worker_killed_mid_batch_stores_each_sample_once(
        fleet: Fleet, tmp_path: Path) -> None:
    """A power-mcmc run on the fleet: its batches travel on sample.<model> like plain ones, a
    worker killed in the middle of one has its batch redone by another, and every sample is
    stored once."""
    exp = tmp_path / "power.yaml"
    exp.write_text(
        "name: power\nn: 4\nmax_tokens: 16\nbatch_size: 64\n"
        "samplers: [{name: power-mcmc, block_tokens: 4, mcmc_steps: 3}]\n"
        "benchmarks:\n  - {name: arith, limit: 6}\n"
        "models:\n  - {name: power-m, model: smollm2-135m, role: base, engine: echo}\n")
    submitted = fleet.cli("submit", str(exp), "--json")
    assert submitted.returncode == 0, submitted.stderr
    # 64 plain samples' worth per message: a power-mcmc sample of up to 16 tokens costs about 3.5
    # plain ones here, so each message holds 64 // (4 * 3.5) = 4 problems
    assert json.loads(submitted.stdout)["queues"] == {"sample.power-m": 2}
    first = fleet.start("sample", "--model", "power-m", "--engine", "echo", "-o", "delay_s=0.3")
    fleet.start("grade", "--concurrency", "1")
    wait_until(lambda: fleet.sql("SELECT count(*) FROM batches WHERE status = 'running' AND kind = 'sample'")[0][0]
               > 0, 60, "a sampling batch to start")
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    fleet.start("sample", "--model", "power-m", "--engine", "echo")
    wait_until(fleet.complete, 120, "the run to complete after the kill\n" + fleet.log())
    assert_exactly(fleet, n=4, runs=1, problems=6)
    assert fleet.sql("SELECT DISTINCT sampler FROM runs") == [("power-mcmc",)]
    costs = fleet.sql("SELECT min(engine_calls), min(decoded_tokens - num_tokens) FROM samples")[0]
    assert costs[0] >= 1 + 3 and costs[1] >= 0


@pytest.mark.slow
def test_power_mcmc_on_a_real_model_tops_up_to_exactly_one_larger_run(hf_engine, tmp_path: Path) -> None:
    """SmolLM2-135M through the hf engine, whose draws do not depend on the batch: a power-mcmc
    run of 1 sample per problem topped up to 2 stores exactly what a run of 2 stores."""
    from boundary.api.db import Database
    from boundary.api.requests import RunRequest, resolve
    from boundary.workers.embedded import run_embedded
    from boundary.workers.graders import open_grader

    def draw(url: str, n: int) -> None:
        spec, problems = resolve(RunRequest(model="smollm2-135m", benchmark="arith", n=n, max_tokens=24,
                                            engine="hf", limit=2, sampler="power-mcmc",
                                            sampler_options={"block_tokens": 8, "mcmc_steps": 2}), None)
        with Database.opened(url) as db:
            run_embedded(db, spec, problems, open_engine=lambda: hf_engine, open_grader=lambda: open_grader("math"))

    topped, fresh = f"sqlite:///{tmp_path / 'topped.db'}", f"sqlite:///{tmp_path / 'fresh.db'}"
    draw(topped, 1)
    draw(topped, 2)
    draw(fresh, 2)
    assert stored(topped) == stored(fresh) and len(stored(fresh)) == 4
    assert all(decoded > num_tokens for _, num_tokens, decoded, *_ in stored(fresh).values())


@pytest.mark.slow
@pytest.mark.parametrize("sampler", [["--sampler", "power-mcmc", "-S", "block_tokens=16", "-S", "mcmc_steps=1"],
                                     ["--sampler", "power-smc", "-S", "block_tokens=16", "-S", "particles=3"]],
                         ids=["power-mcmc", "power-smc"])
def test_boundary_run_power_samples_arith_with_vllm(vllm_token_engine, sqlite_url: str, sampler: list[str]) -> None:
    """The issue's commands, smaller: `boundary run` on vLLM (the session's processed-mode
    engine, found in the process cache) prints pass@k with the tokens per sample, and each
    sample's decoded tokens exceed its own (rejected proposals or discarded particles)."""
    result = boundary("run", "--model", "smollm2-135m", "--benchmark", "arith", "--limit", "2", "-k", "2",
                      *sampler, "--max-tokens", "32", "--database-url", sqlite_url)
    assert result.exit_code == 0, result.output
    assert "pass@k" in result.stdout and "tok/sample" in result.stdout and sampler[1] in result.stdout
    report = json.loads(boundary("report", "--database-url", sqlite_url, "--json").stdout)[0]
    assert report["sampler"] == sampler[1] and report["n"] == 2 and set(report["pass_at_k"]) == {"1", "2"}
    engine = create_engine(sqlite_url)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT num_tokens, decoded_tokens, engine_calls FROM samples")).all()
    engine.dispose()
    assert len(rows) == 4 and all(d > n and c >= 4 for n, d, c in rows)
