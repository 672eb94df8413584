"""Fleet throughput: samples per second from `boundary submit` to sample rows in PostgreSQL,
through real Redis and real `boundary worker sample` processes, against a raw COPY of the
same rows into the same table, measured in the same run.

The engine is `echo` (instant, fixed text: a benchmark fixture), so what is measured is the
queue, the workers and the database, not a model. Needs PostgreSQL and Redis (defaults: the
local ones; a database and a Redis index are created for the run and dropped after).

    python bench/fleet.py [--problems 200] [-k 1024] [--workers 2] [--batch-size 4096]
"""

from __future__ import annotations

import argparse
import io
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psycopg
import redis
from sqlalchemy.engine import make_url

BOUNDARY = str(Path(sys.executable).with_name("boundary"))


def sh(*args: str, env: dict[str, str]) -> None:
    done = subprocess.run([BOUNDARY, *args], env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"boundary {' '.join(args)} failed: {done.stderr.strip()}")


def count(conn: psycopg.Connection, sql: str) -> int:
    return conn.execute(sql).fetchone()[0]


def through_the_fleet(env: dict[str, str], dsn: str, workdir: Path, args: argparse.Namespace) -> float:
    experiment = workdir / "bench.yaml"
    experiment.write_text(
        f"name: bench\nn: {args.k}\nmax_tokens: 16\nbatch_size: {args.batch_size}\n"
        f"benchmarks:\n  - {{name: arith, limit: {args.problems}}}\n"
        "models:\n  - {name: bench-echo, model: smollm2-135m, role: base, engine: echo, template: boxed}\n"
    )
    workers = [
        subprocess.Popen([BOUNDARY, "worker", "sample", "--model", "bench-echo", "--engine", "echo",
                          "--loglevel", "WARNING"],
                         env=env, stdout=subprocess.DEVNULL, stderr=open(workdir / f"w{i}.log", "w"),
                         start_new_session=True)
        for i in range(args.workers)
    ]
    try:
        time.sleep(4)  # workers up and waiting before the clock starts
        expected = args.problems * args.k
        with psycopg.connect(dsn, autocommit=True) as conn:
            start = time.perf_counter()
            sh("submit", str(experiment), env=env)
            while count(conn, "SELECT count(*) FROM samples") < expected:
                if time.perf_counter() - start > 600:
                    raise SystemExit("the fleet did not finish in 10 minutes")
                time.sleep(0.05)
            return time.perf_counter() - start
    finally:
        for w in workers:
            os.killpg(w.pid, signal.SIGTERM)
        for w in workers:
            w.wait(30)


def raw_copy(dsn: str) -> tuple[int, float]:
    """COPY the rows the fleet wrote, as one stream, into an empty copy of the samples table."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        buffer = io.BytesIO()
        with conn.cursor().copy(
            "COPY (SELECT run_id, problem_id, sample_index, text, num_tokens, finish_reason, cumulative_logprob, "
            "created_at FROM samples) TO STDOUT"
        ) as out:
            for chunk in out:
                buffer.write(chunk)
        conn.execute("CREATE TABLE samples_copy (LIKE samples INCLUDING ALL)")
        rows = count(conn, "SELECT count(*) FROM samples")
        start = time.perf_counter()
        with conn.cursor().copy(
            "COPY samples_copy (run_id, problem_id, sample_index, text, num_tokens, finish_reason, cumulative_logprob, "
            "created_at) FROM STDIN"
        ) as copy:
            copy.write(buffer.getvalue())
        return rows, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--problems", type=int, default=200)
    parser.add_argument("-k", type=int, default=1024)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=4096, help="samples per queue message")
    parser.add_argument("--postgres", default=os.environ.get("BOUNDARY_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"))
    parser.add_argument("--redis", default=os.environ.get("BOUNDARY_TEST_REDIS_URL", "redis://127.0.0.1:6379"))
    args = parser.parse_args()

    admin_url = make_url(args.postgres)
    name = f"boundary_bench_{uuid.uuid4().hex[:8]}"
    admin_dsn = admin_url.set(drivername="postgresql").render_as_string(hide_password=False)
    dsn = admin_url.set(drivername="postgresql", database=name).render_as_string(hide_password=False)
    probe = redis.Redis.from_url(args.redis)
    index = next(i for i in range(1, 16) if f"db{i}" not in probe.info("keyspace"))
    env = {**os.environ, "BOUNDARY_DATABASE_URL": admin_url.set(database=name).render_as_string(hide_password=False),
           "BOUNDARY_BROKER_URL": f"{args.redis}/{index}"}
    with psycopg.connect(admin_dsn, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        sh("db", "upgrade", env=env)
        with tempfile.TemporaryDirectory() as tmp:
            seconds = through_the_fleet(env, dsn, Path(tmp), args)
        rows, copy_seconds = raw_copy(dsn)
    finally:
        redis.Redis.from_url(env["BOUNDARY_BROKER_URL"]).flushdb()
        with psycopg.connect(admin_dsn, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    fleet_rate, copy_rate = rows / seconds, rows / copy_seconds
    print(f"fleet: {rows} samples in {seconds:.2f}s = {fleet_rate:,.0f} samples/s "
          f"({args.workers} workers, {args.batch_size} samples per message)")
    print(f"COPY:  {rows} rows in {copy_seconds:.2f}s = {copy_rate:,.0f} rows/s")
    print(f"ratio {fleet_rate / copy_rate:.2f} (fleet {fleet_rate:,.0f} samples/s vs raw COPY {copy_rate:,.0f} rows/s)")


if __name__ == "__main__":
    main()
