"""Fleet throughput: samples per second from `boundary submit` to sample rows in PostgreSQL,
through real Redis and real `boundary worker sample` processes, against a raw COPY of the
same rows into the same table, measured in the same run; and the cost of leases: the same
fleet with its leases renewed every 5 s (the default) and every 0.5 s (tight), against leases
so long that no heartbeat or reaping happens during the run (idle), rounds interleaved.

The engine is `echo` (instant, fixed text: a benchmark fixture), so what is measured is the
queue, the workers and the database, not a model. Needs PostgreSQL and Redis (defaults: the
local ones; a database and a Redis index are created for each pass and dropped after).

    python bench/fleet.py [--problems 200] [-k 1024] [--workers 2] [--batch-size 4096] [--rounds 2]
"""

from __future__ import annotations

import argparse
import io
import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg
from _common import BOUNDARY, POSTGRES, REDIS, scratch_services


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


LEASES = {"idle": ("86400", "43200"), "default": ("20", "5"), "tight": ("2", "0.5")}
"""Lease and heartbeat seconds of each contestant; "idle" renews nothing and reaps nothing
during a run (the lease-free cost of claiming is the same in all three)."""


def one_pass(args: argparse.Namespace, lease: tuple[str, str]) -> tuple[int, float, float]:
    """A fresh database and Redis index, the fleet's run, and a COPY of its rows:
    (rows, fleet seconds, COPY seconds)."""
    with scratch_services(args.postgres, args.redis, {"BOUNDARY_LEASE": lease[0], "BOUNDARY_HEARTBEAT": lease[1]}) as (
            env, dsn):
        with tempfile.TemporaryDirectory() as tmp:
            seconds = through_the_fleet(env, dsn, Path(tmp), args)
        rows, copy_seconds = raw_copy(dsn)
    return rows, seconds, copy_seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--problems", type=int, default=200)
    parser.add_argument("-k", type=int, default=1024)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=4096, help="samples per queue message")
    parser.add_argument("--postgres", default=POSTGRES)
    parser.add_argument("--redis", default=REDIS)
    parser.add_argument("--rounds", type=int, default=2, help="passes of each lease setting, interleaved")
    args = parser.parse_args()

    totals = {name: [0, 0.0] for name in LEASES}
    copy_rows, copy_seconds = 0, 0.0
    for _ in range(args.rounds):
        for name, lease in LEASES.items():
            rows, seconds, copied = one_pass(args, lease)
            totals[name][0] += rows
            totals[name][1] += seconds
            copy_rows, copy_seconds = copy_rows + rows, copy_seconds + copied
            print(f"  {name:8} {rows} samples in {seconds:.2f}s = {rows / seconds:,.0f} samples/s", flush=True)
    rate = {name: rows / seconds for name, (rows, seconds) in totals.items()}
    copy_rate = copy_rows / copy_seconds
    print(f"fleet: {rate['default']:,.0f} samples/s with default leases ({args.workers} workers, {args.batch_size} "
          f"samples per message, {args.rounds} rounds)")
    print(f"COPY:  {copy_rate:,.0f} rows/s")
    print(f"ratio {rate['default'] / copy_rate:.2f} (fleet {rate['default']:,.0f} samples/s vs raw COPY "
          f"{copy_rate:,.0f} rows/s)")
    for name in ("default", "tight"):
        print(f"leases ratio {rate[name] / rate['idle']:.3f} ({name} {LEASES[name][0]}s lease / {LEASES[name][1]}s "
              f"heartbeat {rate[name]:,.0f} samples/s vs idle {rate['idle']:,.0f} samples/s)")


if __name__ == "__main__":
    main()
