"""CodeGrader through the real bubblewrap sandbox: every canonical solution of HumanEval,
HumanEval+, MBPP (sanitized) and MBPP+ passes; wrong, broken and hostile completions fail, with
per-test details; stdin/stdout problems; the Grader contract."""

from __future__ import annotations

from pathlib import Path

import pytest

from boundary.api.benchmarks import load_benchmark
from boundary.api.types import GradeItem, Grader
from boundary.workers.graders import open_grader
from boundary.workers.graders.code import CodeGrader
from boundary.workers.graders.code_plans import PlanOptions

SLOW_FIRST = ("Mbpp/599", "HumanEval/15", "HumanEval/130", "HumanEval/139", "Mbpp/392", "Mbpp/255")
"""Problems whose canonical solutions run for seconds (sums to 10^8, huge outputs): graded first,
so that two workers finish together."""


@pytest.fixture(scope="module")
def grader():
    # Time limits are EvalPlus's (4x the reference's time, at least 1 s) stretched 2x: the
    # reference and the sample may run at different loads on a shared 2-core machine.
    with CodeGrader("bwrap", workers=2,
                    plan_options=PlanOptions(time_limit_factor=8.0, min_time_limit_s=2.0)) as shared:
        yield shared


def canonical(problem) -> str:
    record = problem.record
    return record.get("canonical_solution") or record["code"]


@pytest.mark.parametrize("name, size", [("humaneval", 164), ("humanevalplus", 164), ("mbpp", 427), ("mbppplus", 378)])
def test_canonical_solutions_all_pass(grader: CodeGrader, data_dir: Path, name: str, size: int) -> None:
    problems = sorted(load_benchmark(name, data_dir).problems, key=lambda p: p.key not in SLOW_FIRST)
    items = [GradeItem(p.key, p.answer or "", canonical(p), p.record) for p in problems]
    verdicts = list(grader.grade(items))
    failed = [(v.key, v.error, v.details) for v in verdicts if not v.correct]
    assert len(verdicts) == size and failed == []
    assert all(v.details["status"] == "passed" and set("".join(v.details["tests"].values())) == {"P"} for v in verdicts)
    if name.endswith("plus"):  # (Mbpp/793 has no plus inputs)
        assert all("base" in v.details["tests"] for v in verdicts)
        assert sum("plus" in v.details["tests"] for v in verdicts) >= size - 1


def test_wrong_and_broken_completions_fail(grader: CodeGrader, data_dir: Path) -> None:
    problems = {p.key: p for p in load_benchmark("humanevalplus", data_dir).problems}
    record = problems["HumanEval/0"].record
    cases = {
        "none": "    return None\n",
        "syntax": "    return (\n",  # cut by a token limit: salvaged to the prompt's stub, which returns None
        "raises": "    raise ValueError('no')\n",
        "almost": "    return len(numbers) > 1 and threshold > 0.5\n",
        "fenced-right": "Here:\n```python\ndef has_close_elements(numbers, threshold):\n"
                        "    return any(abs(a - b) < threshold for i, a in enumerate(numbers) "
                        "for b in numbers[i + 1:])\n```",
    }
    verdicts = {v.key: v for v in grader.grade([GradeItem(k, "", c, record) for k, c in cases.items()])}
    assert {k: v.correct for k, v in verdicts.items()} == {"none": False, "syntax": False, "raises": False,
                                                           "almost": False, "fenced-right": True}
    assert verdicts["none"].details["first_failure"]["outcome"] == "failed"
    assert verdicts["raises"].details["first_failure"]["outcome"] == "error"
    assert "ValueError" in verdicts["raises"].details["first_failure"]["message"]
    assert verdicts["fenced-right"].extracted.startswith("def has_close_elements")
    assert verdicts["almost"].details["tests"]["check"][-1] == "F" and verdicts["almost"].error is None


def test_plus_inputs_catch_what_the_base_tests_miss(grader: CodeGrader, data_dir: Path) -> None:
    """A solution that memorized HumanEval's tests passes HumanEval and fails HumanEval+."""
    memorized = ("    known = {(3, 7): 1, (10, 15): 5, (49, 14): 7, (144, 60): 12}\n"
                 "    return known.get((a, b), min(a, b))\n")
    records = [{p.key: p for p in load_benchmark(name, data_dir).problems}["HumanEval/13"].record
               for name in ("humaneval", "humanevalplus")]
    plain, plus = grader.grade([GradeItem(name, "", memorized, r) for name, r in zip(("plain", "plus"), records)])
    verdicts = {plain.key: plain, plus.key: plus}
    assert verdicts["plain"].correct and not verdicts["plus"].correct
    tests = verdicts["plus"].details["tests"]
    assert set(tests["check"]) == set(tests["base"]) == {"P"} and "F" in tests["plus"]
    assert verdicts["plus"].details["first_failure"]["group"] == "plus"


def test_stdin_stdout_problems(grader: CodeGrader) -> None:
    record = {"tests": [{"input": "1 2\n", "output": "3\n"}, {"input": "10 -4\n", "output": "6"}], "time_limit": 2}
    items = [
        GradeItem("right", "", "a, b = map(int, input().split())\nprint(a + b)\n", record),
        GradeItem("fenced", "",
                  "```python\nimport sys\na, b = map(int, sys.stdin.read().split())\nprint(f'{a+b}  ')\n```",
                  record),
        GradeItem("wrong", "", "print(3)\n", record),
        GradeItem("crash", "", "raise SystemExit(3)\n", record),
        GradeItem("slow", "", "while True:\n    pass\n", record),
    ]
    verdicts = {v.key: v for v in grader.grade(items)}
    assert {k: v.correct for k, v in verdicts.items()} == {"right": True, "fenced": True, "wrong": False,
                                                           "crash": False, "slow": False}
    assert verdicts["right"].details["tests"] == {"tests": "PP"}
    assert verdicts["wrong"].details["tests"] == {"tests": "PF"}
    assert verdicts["crash"].details["first_failure"]["outcome"] == "error"
    assert verdicts["slow"].details["first_failure"]["outcome"] == "timeout"


def test_all_tests_mode_runs_past_the_first_failure(data_dir: Path) -> None:
    problem = {p.key: p for p in load_benchmark("mbpp", data_dir).problems}["2"]
    wrong = "def similar_elements(a, b):\n    return (4, 5)\n"
    with CodeGrader("bwrap", all_tests=True, plan_options=PlanOptions(test_timeout_s=3)) as everything:
        (verdict,) = everything.grade([GradeItem(1, "", wrong, problem.record)])
    assert verdict.details["tests"]["check"] == "PFF" and verdict.details["passed"] == 1


def test_problems_without_tests_get_an_error_verdict(grader: CodeGrader) -> None:
    (verdict,) = grader.grade([GradeItem(1, "", "print(1)", {"question": "no tests here"})])
    assert not verdict.correct and verdict.error.startswith("the problem has no tests")


def test_open_grader_gives_a_code_grader() -> None:
    grader = open_grader("code", sandbox="bwrap")
    try:
        assert isinstance(grader, Grader) and grader.name == "code-sandbox"
    finally:
        grader.close()
