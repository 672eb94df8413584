"""`boundary run`, `report` and friends as a user runs them: the real vLLM engine (shared with
the rest of the session through the engine cache), real math-verify, real databases."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine, func, select, text

from boundary.api.cli import cli
from boundary.api.db import schema
from tests.support.paths import REPO

SMALL = ["--model", "smollm2-135m", "--max-tokens", "48", "-q"]


def boundary(*args: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


def samples_by_key(url: str) -> dict[tuple[str, int], str]:
    engine = create_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(
            select(schema.Problem.key, schema.Sample.sample_index, schema.Sample.text).join(
                schema.Problem, schema.Problem.id == schema.Sample.problem_id
            )
        ).all()
    engine.dispose()
    return {(k, i): t for k, i, t in rows}


@pytest.mark.slow
def test_run_reuse_and_top_up_reproduce_one_larger_run(vllm_engine, db_url: str, tmp_path: Path) -> None:
    """A top-up draws exactly the samples one larger run draws. Exact equality needs the
    engine's deterministic mode (batched vLLM kernels are not batch-invariant)."""
    assert boundary("db", "upgrade", "--database-url", db_url).exit_code == 0
    args = ["--model", "smollm2-135m", "--max-tokens", "24", "-q", "--benchmark", "arith", "--limit", "2",
            "--temperature", "1.0", "-o", "deterministic=true", "--database-url"]
    first = boundary("run", *args, db_url, "-k", "2")
    assert first.exit_code == 0, first.output
    assert "drew 4 samples, graded 4" in first.stderr
    assert "pass@k" in first.stdout and "coverage" in first.stdout

    again = boundary("run", *args, db_url, "-k", "2", "--json")
    assert again.exit_code == 0
    report = json.loads(again.stdout)
    assert (report["drawn"], report["graded_now"], report["graded"], report["n"]) == (0, 0, 4, 2)
    assert set(report["pass_at_k"]) == {"1", "2"}

    topped = boundary("run", *args, db_url, "-k", "4", "--json")
    assert topped.exit_code == 0, topped.output
    topped_report = json.loads(topped.stdout)
    assert (topped_report["drawn"], topped_report["graded"], topped_report["partial"]) == (4, 8, False)

    # the same run drawn at once into a second database: identical samples
    fresh_url = f"sqlite:///{tmp_path / 'fresh.db'}"
    fresh = boundary("run", *args, fresh_url, "-k", "4", "--json")
    assert fresh.exit_code == 0
    assert samples_by_key(db_url) == samples_by_key(fresh_url)
    assert len(samples_by_key(fresh_url)) == 8
    assert json.loads(fresh.stdout)["pass_at_k"] == topped_report["pass_at_k"]


@pytest.mark.slow
def test_run_stores_prompts_samples_and_verdicts(vllm_engine, sqlite_url: str, data_dir: Path) -> None:
    result = boundary("run", *SMALL, "--benchmark", "gsm8k", "--limit", "2", "-k", "2", "--template", "chat",
                      "--database-url", sqlite_url, "--data-dir", str(data_dir))
    assert result.exit_code == 0, result.output
    engine = create_engine(sqlite_url)
    with engine.connect() as conn:
        prompts = conn.execute(text("SELECT prompt FROM run_problems")).scalars().all()
        assert len(prompts) == 2 and all(p.startswith("<|im_start|>") and "\\boxed{}" in p for p in prompts)
        assert conn.execute(select(func.count()).select_from(schema.Problem)).scalar() == 1319
        verdicts = conn.execute(text("SELECT grader, grader_version, duration_s FROM verdicts")).all()
        assert len(verdicts) == 4 and {v[0] for v in verdicts} == {"math-verify"}
        model = conn.execute(text("SELECT name, role, family FROM models")).one()
        assert tuple(model) == ("smollm2-135m", "instruct", "smollm2")
    engine.dispose()

    listing = boundary("report", "--database-url", sqlite_url, "--csv")
    rows = listing.stdout.strip().splitlines()
    assert rows[0].startswith("run_id,model,role,benchmark") and len(rows) == 3  # header, k = 1, 2


@pytest.mark.parametrize(("sampler", "label"), [
    (["--sampler", "power-mcmc", "-S", "block_tokens=4", "-S", "mcmc_steps=2"],
     "power-mcmc block_tokens=4 mcmc_steps=2"),
    (["--sampler", "power-smc", "-S", "block_tokens=4", "-S", "particles=3"], "power-smc block_tokens=4 particles=3"),
])
def test_run_with_a_power_sampler_prints_passk_with_tokens_per_sample(sampler: list[str], label: str,
                                                                      db_url: str) -> None:
    """The issue's "done when", on the echo engine's token-level model (a small Markov chain)."""
    args = ["run", "--model", "smollm2-135m", "--engine", "echo", "--benchmark", "arith", "--limit", "3", "-k", "2",
            "--max-tokens", "16", *sampler, "--database-url", db_url, "-q"]
    assert boundary("db", "upgrade", "--database-url", db_url).exit_code == 0
    printed = boundary(*args)
    assert printed.exit_code == 0, printed.output
    header = next(line for line in printed.stdout.splitlines() if "tok/sample" in line)
    row = next(line for line in printed.stdout.splitlines() if label in line)
    assert "sampler" in header and "@1" in header and "coverage" in header
    cells = [c.strip() for c in row.split("│")]
    tokens = cells[[c.strip() for c in header.split("┃")].index("tok/sample")]
    data = json.loads(boundary("report", "--database-url", db_url, "--json").stdout)[0]
    assert data["sampler_label"] == label
    assert float(tokens.replace(",", "")) == pytest.approx(data["mean_decoded_tokens"], abs=0.05)
    engine = create_engine(db_url)
    with engine.connect() as conn:
        decoded = conn.execute(select(func.avg(schema.Sample.decoded_tokens))).scalar()
    engine.dispose()
    assert data["mean_decoded_tokens"] == pytest.approx(float(decoded)) and data["mean_engine_calls"] > 1


def test_report_on_an_empty_database(sqlite_url: str) -> None:
    result = boundary("report", "--database-url", sqlite_url, "--json")
    assert result.exit_code == 0 and json.loads(result.stdout) == []


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--benchmark", "gsm9k"], "unknown benchmark 'gsm9k'"),
        (["--benchmark", "arith", "--engine", "tensorrt"], "unknown engine 'tensorrt'"),
        (["--benchmark", "arith", "-k", "0"], "-k must be >= 1"),
        (["--benchmark", "arith", "--temperature", "-0.5"], "temperature must be >= 0"),
        (["--benchmark", "arith", "--top-p", "0"], "top_p must be in (0, 1]"),
        (["--benchmark", "arith", "--top-p", "1.5"], "top_p must be in (0, 1]"),
        (["--benchmark", "arith", "--template", "fancy"], "unknown prompt template 'fancy'"),
        (["--benchmark", "arith", "--problems", "arith/0,nope"], "not in the benchmark: nope"),
        (["--benchmark", "humaneval"], "set --data-dir or BOUNDARY_DATA_DIR"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(extra: list[str], message: str, tmp_path: Path) -> None:
    db_file = tmp_path / "x.db"
    result = CliRunner().invoke(cli, ["run", "--model", "smollm2-135m", *extra, "--database-url", f"sqlite:///{db_file}"],
                                env={"BOUNDARY_DATA_DIR": ""})
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("Error: ") and len(result.stderr.strip().splitlines()) == 1
    assert message in result.stderr
    assert not db_file.exists()


def test_unknown_model_and_bad_jsonl(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"problem": "1+1", "answer": "2"}\n{"problem": "2+2"\n')
    for args, message in (
        (["--model", "gpt-17", "--benchmark", "arith"], "unknown model 'gpt-17'"),
        (["--model", "smollm2-135m", "--benchmark", str(bad)], f"{bad}:2: not valid JSON"),
    ):
        result = CliRunner().invoke(cli, ["run", *args, "--database-url", f"sqlite:///{tmp_path / 'x.db'}"])
        assert result.exit_code == 1 and message in result.stderr, result.output
        assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "x.db").exists()


def test_unreachable_database(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli, ["run", "--model", "smollm2-135m", "--benchmark", "arith", "--database-url", "postgresql+psycopg://x@127.0.0.1:1/db"]
    )
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: cannot connect to database postgresql+psycopg://x@127.0.0.1:1/db")
    assert len(result.stderr.strip().splitlines()) == 1


def test_benchmarks_load_and_list(data_dir: Path, sqlite_url: str) -> None:
    loaded = boundary("benchmarks", "load", "humaneval", "--data-dir", str(data_dir), "--database-url", sqlite_url)
    assert loaded.exit_code == 0 and "humaneval v1: 164 code problems" in loaded.stdout
    listing = boundary("benchmarks", "list", "--data-dir", str(data_dir), "--json")
    rows = {r["name"]: r for r in json.loads(listing.stdout)}
    assert rows["gsm8k"]["found"] and rows["arith"]["kind"] == "math"


def test_db_upgrade_on_postgres(postgres_url: str) -> None:
    result = boundary("db", "upgrade", "--database-url", postgres_url)
    assert result.exit_code == 0 and "is at revision 0006" in result.stdout


def all_commands(group, prefix=()):
    import click

    for name, command in group.commands.items():
        path = (*prefix, name)
        if isinstance(command, click.Group):
            yield from all_commands(command, path)
        yield path, command


def test_every_command_has_help_with_an_example() -> None:
    for path, _command in all_commands(cli):
        result = boundary(*path, "--help")
        assert result.exit_code == 0, path
        assert "Example" in result.stdout, f"`boundary {' '.join(path)} --help` has no example"


def test_console_script_runs_and_fails_cleanly(tmp_path: Path) -> None:
    exe = Path(sys.executable).with_name("boundary")
    ok = subprocess.run([str(exe), "--help"], capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0 and "boundary run" in ok.stdout
    bad = subprocess.run([str(exe), "run", "--model", "smollm2-135m", "--benchmark", "arith", "-k", "0"],
                         capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert bad.returncode == 1 and bad.stderr.strip() == "Error: -k must be >= 1, got 0"
    assert list(tmp_path.iterdir()) == []


def test_readme_commands_are_what_ci_runs() -> None:
    readme = (REPO / "README.md").read_text()
    commands = [line.strip() for line in readme.split("## Try it")[1].split("## Using it")[0].splitlines()
                if line.strip().startswith(("scripts/", ".venv/"))]
    assert commands == [
        "scripts/install && .venv/bin/boundary run --model smollm2-135m --benchmark arith --limit 20 -k 8",
        "scripts/test",
    ]
    assert "exec scripts/test" in (REPO / ".ci" / "run").read_text()


def test_verify_math_command(tmp_path: Path) -> None:
    source = tmp_path / "samples.jsonl"
    rows = [
        {"id": "a", "answer": "18", "completion": "She makes 9 * 2 = 18 dollars. #### 18"},
        {"id": "b", "answer": "\\frac{1}{2}", "completion": "So the answer is \\boxed{0.5}."},
        {"id": "c", "answer": "7", "completion": "I think it is \\boxed{8}."},
    ]
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "graded.jsonl"
    result = boundary("verify", "math", "--input", str(source), "--output", str(out), "-q")
    assert result.exit_code == 0, result.output
    graded = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(g["id"], g["correct"]) for g in graded] == [("a", True), ("b", True), ("c", False)]
    assert graded[2]["extracted_answer"] == "8"
    assert "2/3 correct" in result.stderr and result.stdout == ""

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"answer": "1", "completion": "1"}\n{"answer": "2"}\n')
    failed = boundary("verify", "math", "--input", str(bad), "--output", str(tmp_path / "never.jsonl"), "-q")
    assert failed.exit_code == 1 and failed.stderr.strip() == f"Error: {bad}:2: missing field 'completion'"
    assert not (tmp_path / "never.jsonl").exists()


@pytest.mark.slow
def test_json_output_stays_clean_when_the_engine_loads_in_the_command(tmp_path: Path, cache_dir: Path) -> None:
    """A fresh process loads vLLM inside `boundary run`: vLLM's own log lines must not reach
    stdout, which scripts parse."""
    exe = Path(sys.executable).with_name("boundary")
    env = {**os.environ, "BOUNDARY_CACHE_DIR": str(cache_dir)}
    env.pop("VLLM_LOGGING_STREAM", None)
    env.pop("VLLM_LOGGING_LEVEL", None)
    done = subprocess.run(
        [str(exe), "run", "--model", "smollm2-135m", "--benchmark", "arith", "--limit", "1", "-k", "2",
         "--max-tokens", "8", "--json"],
        capture_output=True, text=True, timeout=600, cwd=tmp_path, env=env,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout)
    assert (report["drawn"], report["graded"], report["problems"]) == (2, 2, 1)
    assert "loading smollm2-135m with vLLM" in done.stderr
    assert (tmp_path / "boundary.db").is_file()
