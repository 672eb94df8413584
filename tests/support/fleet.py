"""The fleet of a test: `boundary` CLI calls and `boundary worker` processes against the
test's own PostgreSQL database and Redis index, all stopped at the end, with helpers to
write an experiment, wait for a condition and check that nothing was lost or duplicated."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

BOUNDARY = str(Path(sys.executable).with_name("boundary"))


def wait_until(condition: Callable[[], bool], timeout: float, what: str, interval: float = 0.25) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


class Fleet:
    """Worker processes of one test, all stopped at the end."""

    def __init__(self, database_url: str, broker_url: str, logs: Path):
        self.database_url, self.broker_url, self.logs = database_url, broker_url, logs
        self.processes: list[subprocess.Popen] = []
        self.env = {**os.environ, "BOUNDARY_DATABASE_URL": database_url, "BOUNDARY_BROKER_URL": broker_url}

    def cli(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([BOUNDARY, *args], env=self.env, capture_output=True, text=True, timeout=300)

    def start(self, *args: str, env: dict[str, str] | None = None, command: Sequence[str] = (BOUNDARY,),
              visibility_timeout_s: float = 4) -> subprocess.Popen:
        """``boundary worker *args``; ``command`` runs the CLI some other way (a wrapper script).
        The broker gives an unacknowledged message back after ``visibility_timeout_s``."""
        log = open(self.logs / f"worker{len(self.processes)}.log", "w")
        process = subprocess.Popen(
            [*command, "worker", *args, "--visibility-timeout", f"{visibility_timeout_s:g}", "--loglevel", "INFO"],
            env={**self.env, **(env or {})}, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        self.processes.append(process)
        return process

    def stop(self) -> None:
        for p in self.processes:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in self.processes:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()

    def sql(self, query: str) -> list[tuple]:
        engine = create_engine(self.database_url)
        with engine.connect() as conn:
            rows = [tuple(r) for r in conn.execute(text(query))]
        engine.dispose()
        return rows

    def status(self) -> list[dict]:
        done = self.cli("status", "--json")
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    def complete(self) -> bool:
        return all(s["complete"] for s in self.status())

    def log(self) -> str:
        """The end of every worker's log (for a failure message)."""
        return "\n".join(p.read_text()[-3000:] for p in sorted(self.logs.glob("worker*.log")))

    def worker_log(self, index: int) -> str:
        """All of the log of the ``index``-th worker started."""
        return (self.logs / f"worker{index}.log").read_text()


@pytest.fixture
def fleet(postgres_url: str, redis_url: str, tmp_path: Path) -> Iterator[Fleet]:
    f = Fleet(postgres_url, redis_url, tmp_path)
    upgraded = f.cli("db", "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr
    try:
        yield f
    finally:
        f.stop()


def write_experiment(path: Path, name: str, n: int = 8, limit: int = 6, batch_size: int = 16, engine: str = "echo",
                     models: str | None = None, engine_options: str = "") -> Path:
    models = models or (
        f"  - {{name: {name}-base, model: smollm2-135m, role: base, engine: {engine}, "
        f"template: boxed{engine_options}}}\n"
        f"  - {{name: {name}-rl, model: smollm2-135m, role: rlvr, engine: {engine}, "
        f"template: qwen-boxed{engine_options}}}\n"
    )
    path.write_text(
        f"name: {name}\nn: {n}\nmax_tokens: 32\nbatch_size: {batch_size}\n"
        f"benchmarks:\n  - {{name: arith, limit: {limit}}}\nmodels:\n{models}"
    )
    return path


def sample_counts(f: Fleet) -> list[tuple]:
    """(run, problem, samples, distinct indices, max index) for every problem with samples."""
    return f.sql(
        "SELECT run_id, problem_id, count(*), count(DISTINCT sample_index), max(sample_index) "
        "FROM samples GROUP BY run_id, problem_id ORDER BY run_id, problem_id"
    )


def assert_exactly(f: Fleet, n: int, runs: int, problems: int) -> None:
    counts = sample_counts(f)
    assert len(counts) == runs * problems
    assert all(c[2] == n and c[3] == n and c[4] == n - 1 for c in counts), counts
    graded = f.sql("SELECT count(*), count(DISTINCT sample_id) FROM verdicts")[0]
    assert graded == (runs * problems * n, runs * problems * n)
