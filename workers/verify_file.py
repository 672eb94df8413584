"""Grading a JSONL file of completions produced elsewhere (``boundary verify math|code``): one
pipeline (read and check, grade, write atomically, summarise) and an adapter per kind of
answer. The file formats are in docs/fleet.md."""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from boundary.api.benchmarks import LoadedBenchmark
from boundary.api.benchmarks.jsonl import answer_text, read_jsonl
from boundary.api.errors import DataError
from boundary.api.types import GradeItem, Grader, Problem, ProgressFn, Verdict


@dataclass(frozen=True)
class VerifySummary:
    """What a verify run did, printed as one line on stderr."""

    total: int
    correct: int
    errors: int
    seconds: float

    def __str__(self) -> str:
        share = 100 * self.correct / self.total if self.total else 0.0
        return (
            f"{self.correct}/{self.total} correct ({share:.1f}%), "
            f"{self.errors} grading errors, {self.seconds:.1f}s"
        )


class Answers(Protocol):
    """What the pipeline needs of one kind of answer file."""

    def check(self, path: Path, line: int, record: dict[str, Any]) -> None:
        """Raise DataError unless ``record`` (line ``line`` of ``path``) can be graded."""

    def item(self, key: int, record: dict[str, Any]) -> GradeItem: ...

    def graded(self, record: dict[str, Any], verdict: Verdict) -> dict[str, Any]:
        """The line with the verdict's fields added."""


def count_lines(path: Path) -> int:
    """Non-blank lines of a text file (the progress bar's total); 0 when it cannot be read."""
    try:
        with open(path, "rb") as handle:
            return sum(1 for line in handle if line.strip())
    except OSError:
        return 0


def read_checked(path: Path, answers: Answers) -> list[dict[str, Any]]:
    """Every line of ``path``, each checked before anything is graded."""
    records: list[dict[str, Any]] = []
    for line, record in read_jsonl(path):
        answers.check(path, line, record)
        records.append(record)
    if not records:
        raise DataError(path, None, "no lines to grade")
    return records


def write_jsonl_atomic(path: Path, records: Sequence[dict[str, Any]]) -> None:
    """Write ``records`` to a temporary file beside ``path``, then rename it into place; on
    any error or interrupt the temporary file is removed and ``path`` is left as it was."""
    temp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp")
    try:
        with open(temp, "x", encoding="utf-8") as handle:
            for record in records:
                handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        os.replace(temp, path)
    except OSError as exc:
        temp.unlink(missing_ok=True)
        raise DataError(path, None, f"cannot write: {exc.strerror or exc}") from None
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def verify_file(input_path: Path, output_path: Path, answers: Answers, grader: Grader,
                progress: ProgressFn | None = None) -> VerifySummary:
    """Grade every line of ``input_path``; write them, in order, with verdicts to ``output_path``
    (which appears only when complete)."""
    start = time.perf_counter()
    input_path, output_path = Path(input_path), Path(output_path)
    records = read_checked(input_path, answers)
    if not output_path.parent.is_dir():
        raise DataError(output_path, None, f"no such folder: {output_path.parent}")
    items = [answers.item(i, r) for i, r in enumerate(records)]
    verdicts: dict[int, Verdict] = {v.key: v for v in grader.grade(items, progress)}
    graded = [answers.graded(record, verdicts[i]) for i, record in enumerate(records)]
    write_jsonl_atomic(output_path, graded)
    return VerifySummary(
        total=len(graded),
        correct=sum(v.correct for v in verdicts.values()),
        errors=sum(v.error is not None for v in verdicts.values()),
        seconds=time.perf_counter() - start,
    )


class MathAnswers:
    """Lines with ``answer`` (the reference: text or a number) and ``completion`` (text); each
    comes back with ``correct``, ``extracted_answer`` and ``grading_error``."""

    def check(self, path: Path, line: int, record: dict[str, Any]) -> None:
        for name in ("answer", "completion"):
            if name not in record:
                raise DataError(path, line, f"missing field '{name}'")
        answer, completion = record["answer"], record["completion"]
        if isinstance(answer, bool) or not isinstance(answer, (str, int, float)):
            raise DataError(path, line, f"field 'answer' must be text or a number, got {type(answer).__name__}")
        if not isinstance(completion, str):
            raise DataError(path, line, f"field 'completion' must be a string, got {type(completion).__name__}")

    def item(self, key: int, record: dict[str, Any]) -> GradeItem:
        return GradeItem(key, answer_text(record["answer"]), record["completion"])

    def graded(self, record: dict[str, Any], verdict: Verdict) -> dict[str, Any]:
        return {**record, "correct": verdict.correct, "extracted_answer": verdict.extracted,
                "grading_error": verdict.error}


CODE_FIELDS = ("completion", "solution")


class CodeAnswers:
    """human-eval / EvalPlus samples: ``task_id`` and ``completion`` (code that continues the
    prompt) or ``solution`` (the whole program), raw model output with fences allowed. Each
    line comes back with ``passed``, ``result`` (human-eval's words), ``details`` and
    ``grading_error``."""

    def __init__(self, benchmark: LoadedBenchmark):
        self.benchmark = benchmark
        self.index = problem_index(benchmark)

    def check(self, path: Path, line: int, record: dict[str, Any]) -> None:
        if "task_id" not in record:
            raise DataError(path, line, "missing field 'task_id'")
        task = str(record["task_id"])
        if task not in self.index:
            raise DataError(path, line, f"task_id '{task}' is not a {self.benchmark.name} problem")
        field = next((f for f in CODE_FIELDS if f in record), None)
        if field is None:
            raise DataError(path, line, "missing field 'completion' (or 'solution')")
        if not isinstance(record[field], str):
            raise DataError(path, line, f"field '{field}' must be a string, got {type(record[field]).__name__}")

    def item(self, key: int, record: dict[str, Any]) -> GradeItem:
        code = record["completion"] if "completion" in record else record["solution"]
        return GradeItem(key, "", code, self.index[str(record["task_id"])].record)

    def graded(self, record: dict[str, Any], verdict: Verdict) -> dict[str, Any]:
        return {**record, "passed": bool(verdict.correct), "result": result_text(verdict),
                "details": verdict.details, "grading_error": verdict.error}


def problem_index(benchmark: LoadedBenchmark) -> dict[str, Problem]:
    """Problems by id, also under EvalPlus's ``Mbpp/N`` for MBPP's bare numbers."""
    index = {p.key: p for p in benchmark.problems}
    for problem in benchmark.problems:
        if problem.key.isdigit():
            index.setdefault(f"Mbpp/{problem.key}", problem)
    return index


def result_text(verdict: Verdict) -> str:
    """human-eval's ``result``: passed, timed out, or failed with the first failure."""
    details: Mapping[str, Any] = verdict.details or {}
    if verdict.correct:
        return "passed"
    if verdict.error:
        return f"failed: {verdict.error}"
    if details.get("status") == "timeout":
        return "timed out"
    failure = details.get("first_failure") or {}
    return f"failed: {failure.get('message') or details.get('status', 'failed')}"


def verify_math_file(input_path: Path, output_path: Path, grader: Grader,
                     progress: ProgressFn | None = None) -> VerifySummary:
    """``verify_file`` for math answers."""
    return verify_file(input_path, output_path, MathAnswers(), grader, progress)


def verify_code_file(input_path: Path, output_path: Path, benchmark: LoadedBenchmark, grader: Grader,
                     progress: ProgressFn | None = None) -> VerifySummary:
    """``verify_file`` for code answers, against ``benchmark``'s tests."""
    return verify_file(input_path, output_path, CodeAnswers(benchmark), grader, progress)
