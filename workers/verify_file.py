"""Grading a JSONL file of completions produced elsewhere (``boundary verify math``).

Each input line holds ``answer`` (the reference) and ``completion`` (the model's output); every
other field is copied through. The whole file is checked before anything is graded, and the
output appears only when complete: it is written to a temporary file next to it, then renamed.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from boundary.api.benchmarks.jsonl import answer_text, read_jsonl
from boundary.api.errors import DataError
from boundary.api.types import GradeItem, Grader, ProgressFn, Verdict

REQUIRED_FIELDS = ("answer", "completion")


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


def count_lines(path: Path) -> int:
    """Non-blank lines of a text file (the progress bar's total); 0 when it cannot be read."""
    try:
        with open(path, "rb") as handle:
            return sum(1 for line in handle if line.strip())
    except OSError:
        return 0


def read_records(path: Path) -> list[dict[str, Any]]:
    """Every line of ``path``, checked: a JSON object with an ``answer`` (text or a number) and
    a text ``completion``."""
    records: list[dict[str, Any]] = []
    for line, record in read_jsonl(path):
        for name in REQUIRED_FIELDS:
            if name not in record:
                raise DataError(path, line, f"missing field '{name}'")
        answer, completion = record["answer"], record["completion"]
        if isinstance(answer, bool) or not isinstance(answer, (str, int, float)):
            raise DataError(path, line, f"field 'answer' must be text or a number, got {type(answer).__name__}")
        if not isinstance(completion, str):
            raise DataError(path, line, f"field 'completion' must be a string, got {type(completion).__name__}")
        records.append(record)
    if not records:
        raise DataError(path, None, "no lines to grade")
    return records


def graded_record(record: dict[str, Any], verdict: Verdict) -> dict[str, Any]:
    """The input object with the verdict's fields added."""
    return {
        **record,
        "correct": verdict.correct,
        "extracted_answer": verdict.extracted,
        "grading_error": verdict.error,
    }


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


def verify_math_file(
    input_path: Path, output_path: Path, grader: Grader, progress: ProgressFn | None = None
) -> VerifySummary:
    """Grade every line of ``input_path``; write them, in order, with verdicts to ``output_path``."""
    start = time.perf_counter()
    input_path, output_path = Path(input_path), Path(output_path)
    records = read_records(input_path)
    if not output_path.parent.is_dir():
        raise DataError(output_path, None, f"no such folder: {output_path.parent}")
    items = [GradeItem(i, answer_text(r["answer"]), r["completion"]) for i, r in enumerate(records)]
    verdicts: dict[int, Verdict] = {v.key: v for v in grader.grade(items, progress)}
    graded = [graded_record(record, verdicts[i]) for i, record in enumerate(records)]
    write_jsonl_atomic(output_path, graded)
    return VerifySummary(
        total=len(graded),
        correct=sum(v.correct for v in verdicts.values()),
        errors=sum(v.error is not None for v in verdicts.values()),
        seconds=time.perf_counter() - start,
    )
