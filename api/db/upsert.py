"""Idempotent writes: INSERT ... ON CONFLICT DO NOTHING on SQLite and PostgreSQL alike; on
PostgreSQL, large writes go through COPY into a staging table (why: docs/library.md, "Idempotent
writes")."""

from __future__ import annotations

import json
import zlib
from collections.abc import Sequence
from typing import Any

from sqlalchemy import JSON
from sqlalchemy.orm import Session

COPY_FROM_ROWS = 64
"""Rows from which a PostgreSQL write uses COPY and a staging table instead of INSERT."""


def insert_ignore(session: Session, model: type, rows: Sequence[dict[str, Any]], conflict: Sequence[str]) -> None:
    """Insert ``rows``; rows whose ``conflict`` columns already exist are left untouched."""
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql" and len(rows) >= COPY_FROM_ROWS:
        _copy_insert(session, model, rows, conflict)
        return
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    elif dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:  # pragma: no cover - make_engine refuses other backends
        raise NotImplementedError(dialect)
    stmt = insert(model).on_conflict_do_nothing(index_elements=list(conflict))
    session.execute(stmt, list(rows))


def _copy_insert(session: Session, model: type, rows: Sequence[dict[str, Any]], conflict: Sequence[str]) -> None:
    table = model.__table__
    columns = list(rows[0])
    json_columns = {c for c in columns if isinstance(table.c[c].type, JSON)}
    stage = f"_stage_{table.name}_{zlib.crc32(','.join(columns).encode()):08x}"
    names = ", ".join(f'"{c}"' for c in columns)
    raw = session.connection().connection.driver_connection  # psycopg, inside the session's transaction
    with raw.cursor() as cursor:
        cursor.execute(
            f'CREATE TEMP TABLE IF NOT EXISTS "{stage}" ON COMMIT DELETE ROWS AS '
            f'SELECT {names} FROM "{table.name}" WITH NO DATA'
        )
        with cursor.copy(f'COPY "{stage}" ({names}) FROM STDIN') as copy:
            for row in rows:
                copy.write_row(
                    [json.dumps(row[c]) if c in json_columns and row[c] is not None else row[c] for c in columns]
                )
        cursor.execute(
            f'INSERT INTO "{table.name}" ({names}) SELECT {names} FROM "{stage}" '
            f'ON CONFLICT ({", ".join(conflict)}) DO NOTHING'
        )
        cursor.execute(f'TRUNCATE "{stage}"')
