"""Fixtures for the real services a test talks to: a SQLite file, a PostgreSQL database
created and dropped per test, and an empty Redis database index."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from boundary.api.db import Database

POSTGRES_URL = os.environ.get("BOUNDARY_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("BOUNDARY_TEST_REDIS_URL", "redis://127.0.0.1:6379")


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'boundary.db'}"


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A database created for this test and dropped after it."""
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 5})
    try:
        with admin.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001 - any failure means: no server here
        admin.dispose()
        pytest.skip(f"PostgreSQL not reachable at {make_url(POSTGRES_URL).render_as_string()}: "
                    f"{str(exc).splitlines()[0]}")
    name = f"boundary_test_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def redis_url() -> Iterator[str]:
    """A Redis database index that holds no keys, emptied again after the test (other
    indexes, and keys this test did not create, are never touched)."""
    import redis

    try:
        probe = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3)
        keyspace = probe.info("keyspace")
        databases = int(probe.config_get("databases").get("databases", 16))
    except redis.RedisError as exc:
        pytest.skip(f"Redis not reachable at {REDIS_URL}: {exc}")
    free = [i for i in range(1, databases) if f"db{i}" not in keyspace]
    if not free:
        pytest.skip("every Redis database index holds keys; none is free for a test")
    index = free[uuid.uuid4().int % len(free)]
    probe.close()
    client = redis.Redis.from_url(f"{REDIS_URL}/{index}")
    try:
        yield f"{REDIS_URL}/{index}"
    finally:
        client.flushdb()
        client.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest) -> str:
    return request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "postgres_url")


@pytest.fixture
def database(db_url: str) -> Iterator[Database]:
    db = Database.connect(db_url, auto_migrate=True)
    yield db
    db.dispose()
