"""What the benches share: the tally of a contestant's measurements, and scratch services for a
fleet. Not a bench itself; a bench (run as ``python bench/x.py``, so this folder is on its path)
imports it as ``from _common import Tally``."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

BOUNDARY = str(Path(sys.executable).with_name("boundary"))
POSTGRES = os.environ.get("BOUNDARY_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REDIS = os.environ.get("BOUNDARY_TEST_REDIS_URL", "redis://127.0.0.1:6379")


@dataclass
class Tally:
    """Items measured, CPU seconds, wall seconds and passes (correct answers, passing samples), summed over
    rounds."""

    items: int = 0
    cpu_s: float = 0.0
    wall_s: float = 0.0
    passed: int = 0

    def add(self, items: int, cpu_s: float, wall_s: float, passed: int) -> None:
        self.items += items
        self.cpu_s += cpu_s
        self.wall_s += wall_s
        self.passed += passed

    @property
    def per_core(self) -> float:
        return self.items / self.cpu_s

    @property
    def per_wall(self) -> float:
        return self.items / self.wall_s

    @property
    def ms(self) -> float:
        """CPU milliseconds per item."""
        return self.cpu_s / self.items * 1e3


@contextmanager
def scratch_services(postgres: str, redis_url: str,
                     env: dict[str, str] | None = None) -> Iterator[tuple[dict[str, str], str]]:
    """A new PostgreSQL database (migrated) and an empty Redis index for one pass, dropped
    after: the environment that points `boundary` at them, and the database's psycopg DSN."""
    import psycopg
    import redis
    from sqlalchemy.engine import make_url

    admin_url = make_url(postgres)
    name = f"boundary_bench_{uuid.uuid4().hex[:8]}"
    admin_dsn = admin_url.set(drivername="postgresql").render_as_string(hide_password=False)
    dsn = admin_url.set(drivername="postgresql", database=name).render_as_string(hide_password=False)
    probe = redis.Redis.from_url(redis_url)
    index = next(i for i in range(1, 16) if f"db{i}" not in probe.info("keyspace"))
    probe.close()
    environment = {**os.environ, **(env or {}),
                   "BOUNDARY_DATABASE_URL": admin_url.set(database=name).render_as_string(hide_password=False),
                   "BOUNDARY_BROKER_URL": f"{redis_url}/{index}"}
    with psycopg.connect(admin_dsn, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        done = subprocess.run([BOUNDARY, "db", "upgrade"], env=environment, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"boundary db upgrade failed: {done.stderr.strip()}")
        yield environment, dsn
    finally:
        redis.Redis.from_url(environment["BOUNDARY_BROKER_URL"]).flushdb()
        with psycopg.connect(admin_dsn, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
