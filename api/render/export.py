"""Files for other tools: the pass@k table as CSV, and samples with their verdicts as CSV, JSONL
or Parquet, written as they stream in and atomically (the file appears only once complete)."""

from __future__ import annotations

import csv
import io
import json
import os
import uuid
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from boundary.api.analysis.report import RunReport
from boundary.api.analysis.samples import COLUMNS, PAGE
from boundary.api.errors import ConfigError, DataError
from boundary.api.types import canonical_json

FORMATS = ("csv", "jsonl", "parquet")
CSV_FIELDS = (
    "run_id", "model", "role", "benchmark", "benchmark_version", "template", "engine", "sampler", "sampler_options",
    "temperature", "top_p", "max_tokens", "seed", "n", "problems", "graded", "partial", "mean_decoded_tokens",
    "mean_prefill_tokens", "mean_engine_calls", "mean_sampler_stats", "k", "pass_at_k",
)
JSON_TEXT = ("sampler_options", "mean_sampler_stats", "sampler_stats")
"""Fields that hold a mapping, written as canonical JSON text in CSV and Parquet (JSONL keeps a
sample's sampler_stats as an object; sampler_options is the run's stored JSON text everywhere);
a missing mapping stays empty."""


def _flat(item: dict) -> dict:
    """The row with its mappings as JSON text (a stored options text is already JSON)."""
    return {k: (canonical_json(v) if k in JSON_TEXT and v is not None and not isinstance(v, str) else v)
            for k, v in item.items()}


def to_csv(items: Sequence[RunReport]) -> str:
    """The pass@k table in long format: one row per (run, k); pass@n is the coverage row."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for r in items:
        base = _flat({f: getattr(r, f) for f in CSV_FIELDS if f not in ("k", "pass_at_k")})
        for k, value in r.pass_at_k.items():
            writer.writerow({**base, "k": k, "pass_at_k": f"{value:.6f}"})
    return buffer.getvalue()


def write(rows: Iterable[dict], path: Path, fmt: str | None = None) -> int:
    """Write sample rows (analysis.samples) to ``path``, in ``fmt`` or the format the file's
    suffix names; returns the number of rows. The file appears only once complete."""
    fmt = fmt or Path(path).suffix.lstrip(".")
    if fmt not in FORMATS:
        raise ConfigError(f"unknown export format '{fmt}' (known: {', '.join(FORMATS)})")
    path = Path(path)
    if not path.parent.is_dir():
        raise DataError(path, None, f"no such folder: {path.parent}")
    temp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        count = {"csv": _csv, "jsonl": _jsonl, "parquet": _parquet}[fmt](iter(rows), temp)
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
            writer.writerow(_flat(item))
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
        ("benchmark_version", pa.int64()), ("sampler", pa.string()), ("sampler_options", pa.string()),
        ("temperature", pa.float64()), ("problem", pa.string()), ("sample_index", pa.int64()), ("text", pa.string()),
        ("num_tokens", pa.int64()), ("finish_reason", pa.string()), ("cumulative_logprob", pa.float64()),
        ("decoded_tokens", pa.int64()), ("prefill_tokens", pa.int64()), ("engine_calls", pa.int64()),
        ("sampler_stats", pa.string()), ("correct", pa.bool_()), ("extracted_answer", pa.string()),
        ("grader", pa.string()), ("grader_version", pa.string()), ("grading_error", pa.string()),
        ("reference", pa.string()),
    ])
    count = 0
    with pq.ParquetWriter(path, schema) as writer:
        page: list[dict] = []
        for item in items:
            page.append(_flat(item))
            if len(page) >= PAGE:
                writer.write_table(pa.Table.from_pylist(page, schema=schema))
                count, page = count + len(page), []
        if page or count == 0:
            writer.write_table(pa.Table.from_pylist(page, schema=schema))
            count += len(page)
    return count
