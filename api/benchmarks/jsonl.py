"""Reading JSONL benchmark files and mapping their fields onto problems."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from boundary.api.errors import DataError
from boundary.api.types import Problem

ID_FIELDS = ("id", "task_id", "unique_id", "idx", "problem_id")
QUESTION_FIELDS = ("problem", "question", "prompt", "input")
ANSWER_FIELDS = ("answer", "final_answer", "target", "expected_answer")


def read_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (line number, object) for every non-blank line; a bad line is a DataError."""
    try:
        handle = open(path, encoding="utf-8")
    except OSError as exc:
        raise DataError(path, None, f"cannot read: {exc.strerror or exc}") from None
    with handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(path, number, f"not valid JSON ({exc.msg} at column {exc.colno})") from None
            if not isinstance(value, dict):
                raise DataError(path, number, f"expected a JSON object, got {type(value).__name__}")
            yield number, value


def answer_text(value: Any) -> str:
    """A reference answer as text: numbers without a spurious '.0', lists joined by ', '."""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (list, tuple)):
        return ", ".join(answer_text(v) for v in value)
    return str(value)


@dataclass(frozen=True)
class FieldMap:
    """Which record fields hold the id, the question and the reference answer.

    ``None`` means: detect from the first record among the usual names. ``answer`` is not
    required for code benchmarks (``require_answer=False``); a missing ``id`` falls back to
    the line number.
    """

    id: str | None = None
    question: str | None = None
    answer: str | None = None
    require_answer: bool = True

    @classmethod
    def parse(cls, pairs: Sequence[str], require_answer: bool = True) -> FieldMap:
        """From ``["question=problem", "answer=solution"]`` (the CLI's ``--field``)."""
        values: dict[str, str] = {}
        for pair in pairs:
            target, sep, source = pair.partition("=")
            if not sep or target not in ("id", "question", "answer") or not source:
                raise DataError("--field", None, f"expected id=FIELD, question=FIELD or answer=FIELD, got '{pair}'")
            values[target] = source
        return cls(require_answer=require_answer, **values)

    def resolve(self, first: Mapping[str, Any], path: object, line: int) -> FieldMap:
        def pick(given: str | None, candidates: Iterable[str], role: str, required: bool) -> str | None:
            if given is not None:
                return given
            for name in candidates:
                if name in first:
                    return name
            if required:
                looked = ", ".join(candidates)
                raise DataError(path, line, f"no {role} field (looked for {looked}); name it with --field {role}=FIELD")
            return None

        return FieldMap(
            id=pick(self.id, ID_FIELDS, "id", False),
            question=pick(self.question, QUESTION_FIELDS, "question", True),
            answer=pick(self.answer, ANSWER_FIELDS, "answer", self.require_answer),
            require_answer=self.require_answer,
        )


def problems_from_records(
    records: Iterable[tuple[int, Mapping[str, Any]]], fields: FieldMap, path: object
) -> list[Problem]:
    """Map (line, record) pairs to problems; every error names the file and line.

    Once a field is chosen (given, or detected on the first record) every record must have
    it; with no id field at all, problems are keyed by line number.
    """
    problems: list[Problem] = []
    seen: dict[str, int] = {}
    resolved: FieldMap | None = None
    for line, record in records:
        if resolved is None:
            resolved = fields.resolve(record, path, line)
        required = [("question", resolved.question), ("id", resolved.id)]
        if resolved.require_answer:
            required.append(("answer", resolved.answer))
        for role, name in required:
            if name is not None and name not in record:
                raise DataError(path, line, f"missing field '{name}' ({role})")
        key = str(record[resolved.id]) if resolved.id is not None else f"line-{line}"
        if key in seen:
            raise DataError(path, line, f"duplicate id '{key}' (first on line {seen[key]})")
        seen[key] = line
        question = record[resolved.question]
        if not isinstance(question, str) or not question.strip():
            raise DataError(path, line, f"field '{resolved.question}' must be non-empty text")
        raw_answer = record.get(resolved.answer) if resolved.answer is not None else None
        if raw_answer is None and resolved.require_answer:
            raise DataError(path, line, f"field '{resolved.answer}' is empty")
        answer = None if raw_answer is None else answer_text(raw_answer)
        problems.append(Problem(key=key, question=question, answer=answer, record=dict(record)))
    if not problems:
        raise DataError(path, None, "no problems in file")
    return problems
