"""A worker that starts before its database or broker answers waits for them, retrying with
backoff, for a bounded time (`--start-wait`); what waiting cannot fix fails at once. Real
PostgreSQL, Redis and `boundary worker` processes."""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from tests.support.fleet import BOUNDARY, Fleet, assert_exactly, wait_until, write_experiment

NO_REDIS = "redis://127.0.0.1:1/0"
"""A broker URL with nothing listening: every connection is refused."""


@pytest.fixture
def allow_connections(postgres_url: str) -> Iterator[Callable[[bool], None]]:
    """``allow_connections(False)`` makes the test's database refuse new connections (as one
    that is down does), ``allow_connections(True)`` lets them in again (also done at the end)."""
    database = postgres_url.rsplit("/", 1)[1]
    admin = create_engine(postgres_url.rsplit("/", 1)[0] + "/test", isolation_level="AUTOCOMMIT")

    def allow(allowed: bool) -> None:
        with admin.connect() as conn:
            conn.execute(text(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS {str(allowed).lower()}'))

    try:
        yield allow
    finally:
        allow(True)
        admin.dispose()


def worker(fleet: Fleet, *args: str, timeout: float = 60) -> tuple[subprocess.CompletedProcess, float]:
    """``boundary worker *args`` expected to exit: its result and how long it took."""
    started = time.monotonic()
    done = subprocess.run([BOUNDARY, "worker", *args], env=fleet.env, capture_output=True, text=True, timeout=timeout)
    return done, time.monotonic() - started


def test_a_worker_started_while_the_database_refuses_connections_waits_then_grades(
        fleet: Fleet, tmp_path: Path, allow_connections: Callable[[bool], None]) -> None:
    exp = write_experiment(tmp_path / "late.yaml", "late", n=4, limit=4, batch_size=16,
                           models="  - {name: late-m, model: smollm2-135m, role: base, engine: echo}\n")
    assert fleet.cli("submit", str(exp)).returncode == 0
    sampler = fleet.start("sample", "--model", "late-m", "--engine", "echo")
    wait_until(lambda: fleet.sql("SELECT count(*) FROM samples")[0][0] == 16, 60, "the samples\n" + fleet.log())
    assert fleet.sql("SELECT count(*) FROM verdicts")[0][0] == 0

    allow_connections(False)
    grader = fleet.start("grade", "--concurrency", "1")
    wait_until(lambda: "retrying in" in fleet.worker_log(1), 20, "a retry in the log\n" + fleet.log())
    time.sleep(2.0)
    assert grader.poll() is None, fleet.worker_log(1)
    waits = re.findall(r"database unavailable \(.+\); retrying in ([\d.]+)s", fleet.worker_log(1))
    assert waits[:2] == ["0.5", "1.0"], fleet.worker_log(1)

    allow_connections(True)
    wait_until(fleet.complete, 60, "the run to complete\n" + fleet.log())
    assert_exactly(fleet, n=4, runs=1, problems=4)
    assert grader.poll() is None and sampler.poll() is None


def test_a_worker_gives_up_on_an_absent_broker_after_its_start_wait(fleet: Fleet) -> None:
    done, took = worker(fleet, "grade", "--concurrency", "1", "--broker-url", NO_REDIS, "--start-wait", "2")
    assert done.returncode != 0
    assert 1.0 <= took < 10, took
    lines = done.stderr.strip().splitlines()
    retries = [line for line in lines if line.startswith(f"broker {NO_REDIS} does not answer (")]
    assert [line.rsplit(" ", 1)[1] for line in retries] == ["0.5s", "1.0s"], done.stderr
    errors = [line for line in lines if line not in retries]
    assert len(errors) == 1, done.stderr
    assert re.fullmatch(rf"Error: cannot connect to broker {re.escape(NO_REDIS)} after waiting [\d.]+s: .+", errors[0])


def test_start_wait_0_fails_at_once_as_before(fleet: Fleet) -> None:
    done, took = worker(fleet, "grade", "--concurrency", "1", "--broker-url", NO_REDIS, "--start-wait", "0")
    assert done.returncode != 0 and took < 10
    assert done.stderr.strip().splitlines() == [done.stderr.strip()], done.stderr
    assert done.stderr.startswith(f"Error: cannot connect to broker {NO_REDIS}: "), done.stderr


@pytest.mark.parametrize("broker_url", ["redis://127.0.0.1:notaport/0", "http://127.0.0.1:6379/0"])
def test_a_malformed_broker_url_fails_at_once(fleet: Fleet, broker_url: str) -> None:
    done, took = worker(fleet, "grade", "--concurrency", "1", "--broker-url", broker_url, "--start-wait", "600")
    assert done.returncode != 0 and took < 10
    assert "retrying" not in done.stderr
    assert done.stderr.strip().splitlines() == [done.stderr.strip()]
    assert done.stderr.startswith(f"Error: invalid broker URL '{broker_url}'"), done.stderr


def test_a_database_that_waiting_cannot_fix_fails_at_once(postgres_url: str, redis_url: str, tmp_path: Path) -> None:
    """Not at the schema's head (`boundary db upgrade` not run), or no such database: no waiting."""
    for url, message in ((postgres_url, "run `boundary db upgrade`"),
                         (postgres_url + "_missing", "does not exist")):
        fleet = Fleet(url, redis_url, tmp_path)  # never upgraded
        done, took = worker(fleet, "grade", "--concurrency", "1", "--start-wait", "600")
        assert done.returncode != 0
        assert "retrying" not in done.stderr and "unavailable" not in done.stderr, done.stderr
        assert done.stderr.strip().splitlines() == [done.stderr.strip()]
        assert done.stderr.startswith("Error: ") and message in done.stderr, done.stderr
        assert took < 10
