"""`boundary verify code` and `boundary run` on a code benchmark, as a user runs them: the real
bubblewrap sandbox, real benchmark files, and (for `run`) the session's vLLM engine."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine, text

from boundary.api.cli import cli


def boundary(*args: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


def rows_of(data_dir: Path, name: str) -> dict[str, dict]:
    with open(data_dir / name, encoding="utf-8") as handle:
        return {str(r["task_id"]): r for r in map(json.loads, handle)}


def write(path: Path, lines: list) -> Path:
    path.write_text("".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines))
    return path


def test_verify_code_humaneval(tmp_path: Path, data_dir: Path) -> None:
    problems = rows_of(data_dir, "humaneval.jsonl")
    lines = []
    for task in ("HumanEval/0", "HumanEval/1", "HumanEval/2"):
        row = problems[task]
        lines += [
            {"task_id": task, "completion": row["canonical_solution"], "sample": 0},
            {"task_id": task, "completion": "    return None\n", "sample": 1},
            {"task_id": task, "solution": f"```python\n{row['prompt']}{row['canonical_solution']}```"},
        ]
    source, out = write(tmp_path / "samples.jsonl", lines), tmp_path / "graded.jsonl"
    result = boundary("verify", "code", "--benchmark", "humaneval", "--input", str(source), "--output", str(out),
                      "--data-dir", str(data_dir), "-q")
    assert result.exit_code == 0, result.output
    graded = [json.loads(line) for line in out.read_text().splitlines()]
    assert [g["passed"] for g in graded] == [True, False, True] * 3
    assert all({k: g[k] for k in lines[i]} == lines[i] for i, g in enumerate(graded))  # fields copied through
    assert graded[0]["result"] == "passed" and graded[0]["details"]["tests"]["check"] == "PPPPPPP"
    assert graded[1]["result"].startswith("failed: assert candidate(") and graded[1]["details"]["status"] == "failed"
    assert "6/9 correct" in result.stderr and result.stdout == ""


def test_verify_code_mbppplus_with_evalplus_ids(tmp_path: Path, data_dir: Path) -> None:
    problems = rows_of(data_dir, "mbppplus.jsonl")
    lines = [{"task_id": t, "solution": problems[t]["canonical_solution"]} for t in ("Mbpp/2", "Mbpp/3", "Mbpp/4")]
    lines.append({"task_id": "Mbpp/2", "solution": "def similar_elements(a, b):\n    return (4, 5)\n"})
    source, out = write(tmp_path / "samples.jsonl", lines), tmp_path / "graded.jsonl"
    result = boundary("verify", "code", "--benchmark", "mbppplus", "--input", str(source), "--output", str(out),
                      "--data-dir", str(data_dir), "--workers", "2", "-q")
    assert result.exit_code == 0, result.output
    graded = [json.loads(line) for line in out.read_text().splitlines()]
    assert [g["passed"] for g in graded] == [True, True, True, False]
    assert set(graded[0]["details"]["tests"]) == {"base", "plus"} and graded[3]["details"]["tests"]["base"] == "PF-"


@pytest.mark.parametrize(
    "bad_line, message",
    [
        ({"completion": "    return 1\n"}, "missing field 'task_id'"),
        ({"task_id": "HumanEval/999", "completion": "x"}, "task_id 'HumanEval/999' is not a humaneval problem"),
        ({"task_id": "HumanEval/0"}, "missing field 'completion' (or 'solution')"),
        ({"task_id": "HumanEval/0", "completion": 3}, "field 'completion' must be a string, got int"),
        ('{"task_id": ', "not valid JSON (Expecting value at column 1)"),
    ],
)
def test_verify_code_bad_input_is_one_line_and_writes_nothing(
        tmp_path: Path, data_dir: Path, bad_line, message: str) -> None:
    source = write(tmp_path / "in.jsonl", [{"task_id": "HumanEval/0", "completion": "    return 1\n"}, bad_line])
    result = CliRunner().invoke(cli, ["verify", "code", "--benchmark", "humaneval", "--input", str(source),
                                      "--output", str(tmp_path / "out.jsonl"), "--data-dir", str(data_dir), "-q"])
    assert result.exit_code == 1 and result.stderr.strip() == f"Error: {source}:2: {message}", result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.jsonl"]


def test_verify_code_refuses_without_a_sandbox(tmp_path: Path, data_dir: Path) -> None:
    source = write(tmp_path / "in.jsonl", [{"task_id": "HumanEval/0", "completion": "    return 1\n"}])
    args = ["verify", "code", "--benchmark", "humaneval", "--input", str(source),
            "--output", str(tmp_path / "out.jsonl"), "--data-dir", str(data_dir), "-q"]
    refused = CliRunner().invoke(cli, args, env={"BOUNDARY_SANDBOX": "docker"})  # no Docker daemon here
    assert refused.exit_code == 1 and len(refused.stderr.strip().splitlines()) == 1
    assert refused.stderr.startswith(
        "Error: no sandbox can start: docker sandbox cannot start: cannot reach the Docker daemon")
    assert "--unsafe-no-sandbox" in refused.stderr and not (tmp_path / "out.jsonl").exists()
    unsafe = CliRunner().invoke(cli, [*args, "--unsafe-no-sandbox"], env={"BOUNDARY_SANDBOX": "docker"})
    assert unsafe.exit_code == 0 and "0/1 correct" in unsafe.stderr


def test_verify_code_rejects_math_benchmarks(tmp_path: Path, data_dir: Path) -> None:
    source = write(tmp_path / "in.jsonl", [{"task_id": "x", "completion": "1"}])
    result = CliRunner().invoke(cli, ["verify", "code", "--benchmark", "gsm8k", "--input", str(source), "--output",
                                      str(tmp_path / "out.jsonl"), "--data-dir", str(data_dir)])
    assert (result.exit_code == 1
            and "'gsm8k' is a math benchmark: grade it with `boundary verify math`" in result.stderr)


@pytest.mark.slow
def test_run_humaneval_stores_code_verdicts(vllm_engine, sqlite_url: str, data_dir: Path, tmp_path: Path) -> None:
    result = boundary("run", "--model", "smollm2-135m", "--benchmark", "humaneval", "--limit", "2", "-k", "2",
                      "--max-tokens", "64", "-q", "--database-url", sqlite_url, "--data-dir", str(data_dir))
    assert result.exit_code == 0, result.output
    engine = create_engine(sqlite_url)
    with engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT p.key, s.text, v.grader, v.grader_version, v.correct, v.details, v.error FROM verdicts v "
            "JOIN samples s ON s.id = v.sample_id JOIN problems p ON p.id = s.problem_id ORDER BY p.key, s.sample_index"
        )).all()
        prompts = conn.execute(text("SELECT prompt FROM run_problems")).scalars().all()
    engine.dispose()
    assert [r.key for r in rows] == ["HumanEval/0"] * 2 + ["HumanEval/1"] * 2
    assert {r.grader for r in rows} == {"code-sandbox"}
    assert all(r.grader_version.endswith("/bwrap") and r.error is None for r in rows)
    # the model's text is not known in advance, so each stored verdict must be exactly what the
    # sandbox says of its sample graded again on its own (`boundary verify code`)
    source = write(tmp_path / "again.jsonl", [{"task_id": r.key, "completion": r.text} for r in rows])
    again = boundary("verify", "code", "--benchmark", "humaneval", "--input", str(source), "--output",
                     str(tmp_path / "again.out.jsonl"), "--data-dir", str(data_dir), "-q")
    assert again.exit_code == 0, again.output
    regraded = [json.loads(line) for line in (tmp_path / "again.out.jsonl").read_text().splitlines()]
    for row, graded in zip(rows, regraded, strict=True):
        details = json.loads(row.details) if isinstance(row.details, str) else row.details
        assert (bool(row.correct), details) == (graded["passed"], graded["details"]), row.key
        assert details["status"] in ("passed", "failed", "timeout", "crashed", "syntax-error", "load-error")
        assert bool(row.correct) == (details["status"] == "passed")
        outcomes = details["tests"]  # HumanEval's one group of tests, or none where the program never ran
        assert set(outcomes) <= {"check"}, details
        letters = "".join(outcomes.values())
        assert (details["passed"], details["total"]) == (letters.count("P"), len(letters)), details
    assert all(p.startswith("from typing import List") for p in prompts)  # HumanEval's prompt, to be continued


def test_run_a_stdio_jsonl_as_code(tmp_path: Path) -> None:
    """A user's stdin/stdout problems (`--kind code`) go through the sandbox: the fixed reply
    reads two integers and prints their sum, right for one problem and wrong for the other."""
    source = write(tmp_path / "stdio.jsonl", [
        {"id": "sum2", "question": "Print the sum of two integers.",
         "input_output": {"inputs": ["1 2\n", "10 -3\n"], "outputs": ["3\n", "7\n"]}},
        {"id": "mul2", "question": "Print the product of two integers.",
         "input_output": {"inputs": ["2 3\n"], "outputs": ["6\n"]}},
    ])
    url = f"sqlite:///{tmp_path / 'b.db'}"
    reply = 'reply="```python\\na, b = map(int, input().split())\\nprint(a + b)\\n```"'
    result = boundary("run", "--model", "smollm2-135m", "--engine", "echo", "-o", reply, "--benchmark", str(source),
                      "--kind", "code", "-k", "2", "-q", "--json", "--database-url", url)
    assert result.exit_code == 0, result.output
    engine = create_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT p.key, v.correct, v.details FROM verdicts v "
                                 "JOIN samples s ON s.id = v.sample_id "
                                 "JOIN problems p ON p.id = s.problem_id ORDER BY p.key")).all()
    engine.dispose()
    assert [(r.key, bool(r.correct)) for r in rows] == [("mul2", False)] * 2 + [("sum2", True)] * 2
    details = [json.loads(r.details) for r in rows]
    assert [d["tests"]["tests"] for d in details] == ["F", "F", "PP", "PP"]
    assert json.loads(result.stdout)["pass_at_k"] == {"1": 0.5, "2": 0.5}


def test_run_refuses_code_without_a_sandbox(tmp_path: Path, data_dir: Path) -> None:
    result = CliRunner().invoke(cli, ["run", "--model", "smollm2-135m", "--engine", "echo", "--benchmark", "humaneval",
                                      "--limit", "1", "-k", "1", "-q", "--sandbox", "docker",
                                      "--data-dir", str(data_dir), "--database-url", f"sqlite:///{tmp_path / 'b.db'}"])
    assert result.exit_code == 1 and "no sandbox can start" in result.stderr, result.output
