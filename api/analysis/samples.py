"""Samples with their verdicts, run by run: the rows `boundary export` writes."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from boundary.api.db import Database, schema
from boundary.api.runs import find_runs

COLUMNS = (
    "run_id", "model", "role", "benchmark", "benchmark_version", "sampler", "sampler_options", "temperature", "problem",
    "sample_index", "text", "num_tokens", "finish_reason", "cumulative_logprob", "decoded_tokens", "prefill_tokens",
    "engine_calls", "sampler_stats", "correct", "extracted_answer", "grader", "grader_version", "grading_error",
    "reference",
)
"""The columns of a sample row: ``sampler_options`` is the run's canonical JSON text, ``sampler_stats``
the sample's diagnostics (a mapping, or None for plain); the cost columns are schema.Sample's."""
PAGE = 5000
"""Rows fetched from the database at a time, so that millions of rows never sit in memory at once."""


def rows(session: Session, run_ids: Sequence[int]) -> Iterator[dict[str, Any]]:
    """Every sample of the runs, with its verdict (None where not graded yet)."""
    query = (
        select(
            schema.Sample.run_id, schema.Model.name.label("model"), schema.Model.role,
            schema.Benchmark.name.label("benchmark"), schema.Benchmark.version.label("benchmark_version"),
            schema.Run.sampler, schema.Run.sampler_options, schema.Run.temperature, schema.Problem.key.label("problem"),
            schema.Sample.sample_index, schema.Sample.text, schema.Sample.num_tokens, schema.Sample.finish_reason,
            schema.Sample.cumulative_logprob, schema.Sample.decoded_tokens, schema.Sample.prefill_tokens,
            schema.Sample.engine_calls, schema.Sample.sampler_stats, schema.Verdict.correct,
            schema.Verdict.extracted_answer, schema.Verdict.grader, schema.Verdict.grader_version,
            schema.Verdict.error.label("grading_error"), schema.Problem.answer.label("reference"),
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


def load_samples(db: Database, run_ids: Sequence[int] = ()) -> tuple[list[int], Iterator[dict[str, Any]]]:
    """The runs asked for (default: all; an unknown id is ``NotFound``), and their rows, read
    lazily in a session of their own as the caller consumes them."""
    with db.session() as session:
        ids = find_runs(session, run_ids)
    return ids, _stream(db, ids)


def _stream(db: Database, run_ids: list[int]) -> Iterator[dict[str, Any]]:
    with db.session() as session:
        yield from rows(session, run_ids)
