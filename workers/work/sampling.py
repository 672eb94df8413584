"""The sampling task: draw the samples a run is missing for some problems and store them,
idempotently (an upsert on run, problem and sample index), with what each cost the engine; a
run whose sampler is not plain draws through boundary.workers.samplers."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from typing import Any

from boundary.api.db import Database, schema
from boundary.api.db.retry import with_retry
from boundary.api.planning import SampleWork, render_missing_prompts, run_sampler, sample_work, sampling_config
from boundary.api.types import Completion, Engine, GenerationRequest, ProgressFn
from boundary.workers import samplers
from boundary.workers.work.rows import write_rows

WRITE_ROWS = 4096
"""Samples written at once, at most: a write per sample would cost more than the sampling of a
fast engine."""

WRITE_AFTER_S = 5.0
"""Seconds after which samples streaming in from a slow engine are written even if fewer than
WRITE_ROWS have arrived, so that a crash loses little and `status` sees progress."""


def _clean(text: str) -> str:
    # PostgreSQL text cannot hold NUL; keep SQLite and PostgreSQL byte-identical.
    return text.replace("\x00", "\ufffd")


def requests_for(work: Sequence[SampleWork]) -> list[GenerationRequest]:
    return [
        GenerationRequest(key=w.problem_id, prompt=w.prompt, seed=w.seed, first_index=first, count=count)
        for w in work
        for first, count in w.ranges
    ]


def _rows(run_id: int, completions: Iterator[Completion]) -> Iterator[dict]:
    now = schema.utcnow()
    for c in completions:
        cost = c.spent()
        yield {
            "run_id": run_id,
            "problem_id": c.key,
            "sample_index": c.index,
            "text": _clean(c.text),
            "num_tokens": c.num_tokens,
            "finish_reason": c.finish_reason,
            "cumulative_logprob": c.cumulative_logprob,
            "decoded_tokens": cost.decoded_tokens,
            "prefill_tokens": cost.prefill_tokens if c.cost is not None or c.prompt_tokens is not None else None,
            "engine_calls": cost.engine_calls,
            "sampler_stats": dict(c.diagnostics) if c.diagnostics is not None else None,
            "created_at": now,
        }


def sample_problems(
    db: Database,
    engine: Engine,
    run_id: int,
    problem_ids: Sequence[int],
    progress: ProgressFn | None = None,
    retry_window_s: float = 0.0,
) -> int:
    """Draw and store every missing sample of ``problem_ids`` in ``run_id``; returns how many
    samples were drawn. Prompts only the model can render (chat templates) are rendered first.
    Writes are retried for ``retry_window_s`` while the database is unreachable, so a database
    restart does not throw away drawn samples."""

    def prepare() -> tuple[Any, Any, list[SampleWork]]:
        with db.session() as session:
            render_missing_prompts(session, run_id, problem_ids, engine.render_chat)
        with db.session() as session:
            run, work = sample_work(session, run_id, problem_ids)
            return sampling_config(run), run_sampler(run), work

    config, sampler, work = with_retry(prepare, retry_window_s)
    requests = requests_for(work)
    if not requests:
        return 0
    if sampler.is_plain:
        completions = engine.generate(requests, config, progress)
    else:
        completions = samplers.generate(engine, sampler, requests, config, progress)
    drawn = 0
    batch: list[dict] = []
    last_write = time.monotonic()
    for row in _rows(run_id, completions):
        batch.append(row)
        if len(batch) >= WRITE_ROWS or time.monotonic() - last_write >= WRITE_AFTER_S:
            drawn += _write(db, batch, retry_window_s)
            batch, last_write = [], time.monotonic()
    return drawn + _write(db, batch, retry_window_s)


def _write(db: Database, rows: list[dict], retry_window_s: float) -> int:
    return write_rows(db, schema.Sample, rows, ["run_id", "problem_id", "sample_index"], retry_window_s)
