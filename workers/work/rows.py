"""Reading and writing the rows the task functions work on, retried while the database is
unreachable (a restart must not throw away samples drawn or verdicts computed)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

from sqlalchemy import Select

from boundary.api.db import Database, schema
from boundary.api.db.retry import with_retry
from boundary.api.db.upsert import insert_ignore


def sample_page(query: Select, run_id: int, problem_ids: Sequence[int] | None, after_id: int, size: int) -> Select:
    """``query`` (on samples) narrowed to the run's samples after ``after_id`` (of ``problem_ids``
    only, unless None), ``size`` of them in ascending id."""
    query = (query.where(schema.Sample.run_id == run_id, schema.Sample.id > after_id)
             .order_by(schema.Sample.id).limit(size))
    if problem_ids is not None:
        query = query.where(schema.Sample.problem_id.in_(list(problem_ids)))
    return query


def pages(db: Database, query: Callable[[int], Select], retry_window_s: float = 0.0) -> Iterator[list[Any]]:
    """The rows of ``query(after_id)``, a page at a time, in ascending ``id``: each page is read
    after the last id of the one before, so rows the caller writes in between never come back."""
    after = 0
    while True:

        def read(after: int = after) -> list[Any]:
            with db.session() as session:
                return list(session.execute(query(after)).all())

        page = with_retry(read, retry_window_s)
        if not page:
            return
        after = page[-1].id
        yield page


def write_rows(db: Database, table: type, rows: Sequence[dict], keys: Sequence[str],
               retry_window_s: float = 0.0) -> int:
    """Insert ``rows``, ignoring those whose ``keys`` are already stored; returns how many were given."""
    def write() -> None:
        with db.session() as session:
            insert_ignore(session, table, list(rows), list(keys))

    if rows:
        with_retry(write, retry_window_s)
    return len(rows)
