"""`boundary verify math`'s library call: JSONL in, graded JSONL out, atomically."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from boundary.api.errors import DataError
from boundary.workers.graders.math import MathGrader
from boundary.workers.verify_file import VerifySummary, count_lines, verify_math_file


@pytest.fixture(scope="module")
def grader():
    with MathGrader() as shared:
        yield shared


def write_lines(path: Path, lines: list[Any]) -> Path:
    path.write_text("".join((v if isinstance(v, str) else json.dumps(v)) + "\n" for v in lines), encoding="utf-8")
    return path


def read_output(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def benchmark_rows(data_dir: Path, name: str, count: int) -> list[dict[str, Any]]:
    with open(data_dir / name, encoding="utf-8") as handle:
        return [json.loads(next(handle)) for _ in range(count)]


def test_fields_copied_through_in_order(tmp_path: Path, grader: MathGrader) -> None:
    rows = [
        {"id": "b", "answer": "18", "completion": "#### 18", "model": "m", "meta": {"t": 0.6}},
        {"id": "a", "answer": "\\frac{1}{2}", "completion": "so \\boxed{0.5}", "sample": 3},
        {"id": "c", "answer": "18", "completion": "no idea"},
        {"id": "d", "answer": "2, 3", "completion": "\\boxed{4}"},
    ]
    source = write_lines(tmp_path / "in.jsonl", [rows[0], "", *rows[1:]])
    summary = verify_math_file(source, tmp_path / "out.jsonl", grader)
    graded = read_output(tmp_path / "out.jsonl")
    assert [{k: g[k] for k in r} for g, r in zip(graded, rows)] == rows
    assert [(g["correct"], g["extracted_answer"], g["grading_error"]) for g in graded] == [
        (True, "18", None),
        (True, "\\frac{1}{2}", None),  # math-verify's own string form of \boxed{0.5}
        (False, None, None),
        (False, "4", None),
    ]
    assert (summary.total, summary.correct, summary.errors) == (4, 2, 0)
    assert str(summary).startswith("2/4 correct (50.0%), 0 grading errors")
    assert count_lines(source) == 4


@pytest.mark.parametrize(
    "bad_line, message",
    [
        ('{"answer": "1", "completion": ', "not valid JSON"),
        ({"answer": "1"}, "missing field 'completion'"),
        ({"completion": "1"}, "missing field 'answer'"),
        ({"answer": [18], "completion": "#### 18"}, "field 'answer' must be text or a number, got list"),
        ({"answer": "18", "completion": None}, "field 'completion' must be a string, got NoneType"),
    ],
)
def test_bad_line_names_file_and_line_and_writes_nothing(tmp_path: Path, bad_line: Any, message: str) -> None:
    good = {"answer": "1", "completion": "#### 1"}
    source = write_lines(tmp_path / "in.jsonl", [good, good, bad_line, good])
    unstarted = MathGrader()
    with pytest.raises(DataError) as caught:
        verify_math_file(source, tmp_path / "out.jsonl", unstarted)
    assert str(caught.value).startswith(f"{source}:3: {message}")
    assert unstarted.pid is None  # validated before any grading
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.jsonl"]


def test_numeric_answers_are_accepted(tmp_path: Path, grader: MathGrader) -> None:
    source = write_lines(tmp_path / "in.jsonl",
                         [{"answer": 18, "completion": "#### 18"}, {"answer": 2.5, "completion": "\\boxed{5/2}"}])
    summary = verify_math_file(source, tmp_path / "out.jsonl", grader)
    assert summary.correct == 2
    assert [json.loads(line)["answer"] for line in (tmp_path / "out.jsonl").read_text().splitlines()] == [18, 2.5]


def test_empty_input_and_missing_folder(tmp_path: Path, grader: MathGrader) -> None:
    empty = write_lines(tmp_path / "empty.jsonl", [""])
    with pytest.raises(DataError, match="no lines to grade"):
        verify_math_file(empty, tmp_path / "out.jsonl", grader)
    source = write_lines(tmp_path / "in.jsonl", [{"answer": "1", "completion": "#### 1"}])
    with pytest.raises(DataError, match="no such folder"):
        verify_math_file(source, tmp_path / "nowhere" / "out.jsonl", grader)


def test_interrupt_leaves_old_output_untouched(tmp_path: Path) -> None:
    source = write_lines(tmp_path / "in.jsonl", [{"answer": str(i), "completion": f"#### {i}"} for i in range(5)])
    output = write_lines(tmp_path / "out.jsonl", ["previous"])

    def interrupt(_: int) -> None:
        raise KeyboardInterrupt

    with MathGrader(batch_size=2) as small, pytest.raises(KeyboardInterrupt):
        verify_math_file(source, output, small, interrupt)
    assert output.read_text() == "previous\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.jsonl", "out.jsonl"]


def test_output_may_replace_input(tmp_path: Path, grader: MathGrader) -> None:
    source = write_lines(tmp_path / "in.jsonl", [{"id": 1, "answer": "4", "completion": "#### 4"}])
    verify_math_file(source, source, grader)
    assert read_output(source) == [
        {"id": 1, "answer": "4", "completion": "#### 4", "correct": True, "extracted_answer": "4",
         "grading_error": None}
    ]


@pytest.mark.parametrize(
    "name, completion",
    [
        ("gsm8k_test.jsonl", lambda row: row["solution"]),
        ("math500.jsonl", lambda row: row["solution"]),
        ("math500.jsonl", lambda row: f"The answer is \\boxed{{{row['answer']}}}"),
    ],
    ids=["gsm8k-solution", "math500-solution", "math500-boxed"],
)
def test_real_benchmark_answers_grade_correct(
    tmp_path: Path, data_dir: Path, grader: MathGrader, name: str, completion: Any
) -> None:
    rows = benchmark_rows(data_dir, name, 30)
    lines = [{"id": r["id"], "answer": r["answer"], "completion": completion(r)} for r in rows]
    summary = verify_math_file(write_lines(tmp_path / "in.jsonl", lines), tmp_path / "out.jsonl", grader)
    assert isinstance(summary, VerifySummary)
    assert summary.errors == 0
    assert summary.correct >= 28, [g for g in read_output(tmp_path / "out.jsonl") if not g["correct"]]
