"""Benchmarks in the database: each distinct content of a benchmark is stored once, as the next
version of its name, with its problems; runs point at the version they were drawn on."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from boundary.api.benchmarks import LoadedBenchmark
from boundary.api.db import schema


def stored_benchmark(session: Session, benchmark: LoadedBenchmark) -> schema.Benchmark | None:
    """The stored version with exactly this content, if there is one."""
    return session.scalars(
        select(schema.Benchmark).where(
            schema.Benchmark.name == benchmark.name, schema.Benchmark.content_hash == benchmark.content_hash
        )
    ).one_or_none()


def benchmark_notice(session: Session, benchmark: LoadedBenchmark) -> str | None:
    """A message when stored versions of this benchmark differ from the loaded content."""
    if stored_benchmark(session, benchmark) is not None:
        return None
    versions = session.scalars(
        select(schema.Benchmark.version).where(schema.Benchmark.name == benchmark.name)
    ).all()
    if not versions:
        return None
    return (
        f"benchmark '{benchmark.name}' differs from the stored version(s) {', '.join(map(str, sorted(versions)))} "
        f"(content hash {benchmark.content_hash[:12]}): it is stored as version {max(versions) + 1}, "
        "and earlier runs stay on their own version"
    )


def store_benchmark(session: Session, benchmark: LoadedBenchmark) -> schema.Benchmark:
    """Store a benchmark version and its problems (a no-op when this content is stored)."""
    row = stored_benchmark(session, benchmark)
    if row is not None:
        return row
    version = (
        session.scalar(select(func.max(schema.Benchmark.version)).where(schema.Benchmark.name == benchmark.name)) or 0
    ) + 1
    row = schema.Benchmark(name=benchmark.name, version=version, kind=benchmark.kind, source=benchmark.source,
                           content_hash=benchmark.content_hash, num_problems=len(benchmark.problems))
    session.add(row)
    session.flush()
    session.execute(
        schema.Problem.__table__.insert(),
        [
            {
                "benchmark_id": row.id,
                "position": i,
                "key": p.key,
                "question": p.question,
                "answer": p.answer,
                "record": dict(p.record),
                "content_hash": p.content_hash,
            }
            for i, p in enumerate(benchmark.problems)
        ],
    )
    return row


def store_version(session: Session, benchmark: LoadedBenchmark) -> tuple[schema.Benchmark, str | None]:
    """``store_benchmark``, with the notice that says when this content is a new version of a
    benchmark already stored (what `boundary benchmarks load` prints)."""
    notice = benchmark_notice(session, benchmark)
    return store_benchmark(session, benchmark), notice
