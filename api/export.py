"""Exports of samples with their verdicts, as CSV, JSONL or Parquet, streamed run by run so
that millions of rows never sit in memory at once. Written atomically."""

from __future__ import annotations

import csv
import json
import os
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from boundary.api.db import schema
from boundary.api.errors import ConfigError, DataError

FORMATS = ("csv", "jsonl", "parquet")
COLUMNS = (
    "run_id", "model", "role", "benchmark", "benchmark_version", "temperature", "problem", "sample_index", "text",
    "num_tokens", "finish_reason", "cumulative_logprob", "correct", "extracted_answer", "grader", "grader_version",
    "grading_error", "reference",
)
PAGE = 5000


def rows(session: Session, run_ids: Sequence[int]) -> Iterator[dict[str, Any]]:
    """Every sample of the runs, with its verdict (None where not graded yet)."""
    query = (
        select(
            schema.Sample.run_id, schema.Model.name.label("model"), schema.Model.role, schema.Benchmark.name.label("benchmark"),
            schema.Benchmark.version.label("benchmark_version"), schema.Run.temperature, schema.Problem.key.label("problem"),
            schema.Sample.sample_index, schema.Sample.text, schema.Sample.num_tokens, schema.Sample.finish_reason,
            schema.Sample.cumulative_logprob, schema.Verdict.correct, schema.Verdict.extracted_answer, schema.Verdict.grader,
            schema.Verdict.grader_version, schema.Verdict.error.label("grading_error"), schema.Problem.answer.label("reference"),
        )
        .join(schema.Run, schema.Run.id == schema.Sample.run_id)
        .join(schema.Model, schema.Model.id == schema.Run.model_id)
        .join(schema.Benchmark, schema.Benchmark.id == schema.Run.benchmark_id)
        .join(schema.Problem, schema.Problem.id == schema.Sample.problem_id)
        .outerjoin(schema.Verdict, schema.Verdict.sample_id == schema.Sample.id)
        .order_by(schema.Sample.run_id, schema.Problem.position, schema.Sample.sample_index)
    )
    for run_id in run_ids:
        result = session.execute(query.where(schema.Sample.run_id == run_id).execution_options(yield_per=PAGE))
        for row in result:
            yield dict(row._mapping)


def export(session: Session, run_ids: Sequence[int], path: Path, fmt: str | None = None) -> int:
    """Write the runs' samples to ``path`` (format from ``fmt`` or the file's suffix); returns
    the number of rows. The file appears only once complete."""
    fmt = fmt or Path(path).suffix.lstrip(".")
    if fmt not in FORMATS:
        raise ConfigError(f"unknown export format '{fmt}' (known: {', '.join(FORMATS)})")
    path = Path(path)
    if not path.parent.is_dir():
        raise DataError(path, None, f"no such folder: {path.parent}")
    temp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        count = {"csv": _csv, "jsonl": _jsonl, "parquet": _parquet}[fmt](rows(session, run_ids), temp)
        os.replace(temp, path)
        return count
    finally:
        temp.unlink(missing_ok=True)


def _csv(items: Iterator[dict], path: Path) -> int:
    count = 0
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        for item in items:
            writer.writerow(item)
            count += 1
    return count


def _jsonl(items: Iterator[dict], path: Path) -> int:
    count = 0
    with open(path, "w", encoding="utf-8") as handle:
        for item in items:
            handle.write(json.dumps(item, ensure_ascii=False) + "\n")
            count += 1
    return count


def _parquet(items: Iterator[dict], path: Path) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema([
        ("run_id", pa.int64()), ("model", pa.string()), ("role", pa.string()), ("benchmark", pa.string()),
        ("benchmark_version", pa.int64()), ("temperature", pa.float64()), ("problem", pa.string()),
        ("sample_index", pa.int64()), ("text", pa.string()), ("num_tokens", pa.int64()), ("finish_reason", pa.string()),
        ("cumulative_logprob", pa.float64()), ("correct", pa.bool_()), ("extracted_answer", pa.string()),
        ("grader", pa.string()), ("grader_version", pa.string()), ("grading_error", pa.string()), ("reference", pa.string()),
    ])
    count = 0
    with pq.ParquetWriter(path, schema) as writer:
        page: list[dict] = []
        for item in items:
            page.append(item)
            if len(page) >= PAGE:
                writer.write_table(pa.Table.from_pylist(page, schema=schema))
                count, page = count + len(page), []
        if page or count == 0:
            writer.write_table(pa.Table.from_pylist(page, schema=schema))
            count += len(page)
    return count
