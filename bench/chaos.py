"""Chaos: a fleet that heals itself. The same experiment runs twice through real Redis,
PostgreSQL and `boundary worker` processes: once undisturbed (the reference), once while a
random worker is killed with SIGKILL every 3-5 seconds (`--kill-every`) (a supervisor restarts it, as Compose or
Kubernetes would), the broker's database is flushed once and PostgreSQL is restarted once. No
`boundary resume` or other command is typed. Prints whether every sample and verdict is there
exactly once, how long the fleet took to finish after the last fault, and the ratio of the two
runs' times.

The engine is `echo` with a delay per sample (a stand-in for a GPU: what is measured is the
fleet). The visibility timeout is left at its default (6 hours): only leases bring the batches
of dead workers back. Restarting PostgreSQL restarts the local cluster (`--restart-db`, the
command; empty: no restart): run this on a machine of your own.

    python bench/chaos.py [--chaos-s 90] [--problems 40] [-k 64] [--batch-size 128]
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import psycopg
import redis
from _common import BOUNDARY, POSTGRES, REDIS, scratch_services


def default_restart() -> str:
    versions = sorted(os.listdir("/etc/postgresql")) if os.path.isdir("/etc/postgresql") else []
    return f"pg_ctlcluster --skip-systemctl-redirect {versions[-1]} main restart" if versions else ""


class Supervisor:
    """Keeps one process per worker command line running, restarting any that dies."""

    def __init__(self, commands: list[list[str]], env: dict[str, str], logs: Path):
        self.commands, self.env, self.logs = commands, env, logs
        self.processes: list[subprocess.Popen | None] = [None] * len(commands)
        self.starts = 0
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._watch, daemon=True)

    def _start(self, i: int) -> None:
        self.starts += 1
        log = open(self.logs / f"worker{i}-{self.starts}.log", "w")
        self.processes[i] = subprocess.Popen([BOUNDARY, "worker", *self.commands[i]], env=self.env, stdout=log,
                                             stderr=subprocess.STDOUT, start_new_session=True)

    def _watch(self) -> None:
        while not self.stop.wait(0.5):
            with self.lock:
                for i, p in enumerate(self.processes):
                    if p is None or p.poll() is not None:
                        self._start(i)

    def __enter__(self) -> Supervisor:
        with self.lock:
            for i in range(len(self.commands)):
                self._start(i)
        self.thread.start()
        return self

    def kill_one(self) -> None:
        with self.lock:
            alive = [p for p in self.processes if p is not None and p.poll() is None]
            if alive:
                victim = random.choice(alive)
                os.killpg(victim.pid, signal.SIGKILL)
                victim.wait()

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        self.thread.join()
        for p in self.processes:
            if p is not None and p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in self.processes:
            if p is not None:
                try:
                    p.wait(30)
                except subprocess.TimeoutExpired:
                    os.killpg(p.pid, signal.SIGKILL)


def counts(dsn: str) -> tuple[int, ...]:
    """(samples, distinct sample keys, verdicts, distinct graded samples, failed batches, the most
    attempts counted against one batch); 0s while the database is down."""
    try:
        with psycopg.connect(dsn, autocommit=True, connect_timeout=2) as conn:
            return conn.execute(
                "SELECT (SELECT count(*) FROM samples), "
                "(SELECT count(*) FROM (SELECT DISTINCT run_id, problem_id, sample_index FROM samples) s), "
                "(SELECT count(*) FROM verdicts), (SELECT count(DISTINCT sample_id) FROM verdicts), "
                "(SELECT count(*) FROM batches WHERE status = 'failed'), "
                "(SELECT coalesce(max(attempts), 0) FROM batches)").fetchone()
    except psycopg.OperationalError:
        return (0, 0, 0, 0, 0, 0)


def one_run(args: argparse.Namespace, chaos: bool) -> dict:
    with scratch_services(args.postgres, args.redis) as (env, dsn), tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        models = [f"chaos-{i}" for i in range(args.models)]
        experiment = workdir / "chaos.yaml"
        experiment.write_text(
            f"name: chaos\nn: {args.k}\nmax_tokens: 16\nbatch_size: {args.batch_size}\n"
            f"benchmarks:\n  - {{name: arith, limit: {args.problems}}}\nmodels:\n"
            + "".join(f"  - {{name: {m}, model: smollm2-135m, role: base, engine: echo}}\n" for m in models))
        commands = [["sample", "--model", m, "--engine", "echo", "-o", f"delay_s={args.delay}"]
                    for m in models for _ in range(args.samplers)]
        commands += [["grade", "--concurrency", "1"] for _ in range(args.graders)]
        expected = args.models * args.problems * args.k
        faults = {"kills": 0, "flushes": 0, "db_restarts": 0}
        with Supervisor(commands, env, workdir) as fleet:
            time.sleep(3)  # workers up before the clock starts
            start = time.monotonic()
            done = subprocess.run([BOUNDARY, "submit", str(experiment)], env=env, capture_output=True, text=True)
            if done.returncode != 0:
                raise SystemExit(f"boundary submit failed: {done.stderr.strip()}")
            last_fault = start
            if chaos:
                end = start + args.chaos_s
                flush_at, restart_at = start + args.chaos_s / 3, start + 2 * args.chaos_s / 3
                while time.monotonic() < end:
                    time.sleep(random.uniform(*args.kill_every))
                    fleet.kill_one()
                    faults["kills"] += 1
                    now = time.monotonic()
                    if flush_at and now >= flush_at:
                        redis.Redis.from_url(env["BOUNDARY_BROKER_URL"]).flushdb()
                        faults["flushes"] += 1
                        flush_at = 0
                    if restart_at and now >= restart_at and args.restart_db:
                        subprocess.run(args.restart_db, shell=True, check=True)
                        faults["db_restarts"] += 1
                        restart_at = 0
                    last_fault = time.monotonic()
            while True:
                seen = counts(dsn)
                if seen[0] >= expected and seen[2] >= expected:
                    break
                if time.monotonic() - start > args.timeout_s:
                    print(f"  gave up after {args.timeout_s:.0f}s: {seen}")
                    break
                time.sleep(0.25)
            finished = time.monotonic()
            seen = counts(dsn)
            starts = fleet.starts
    return {"expected": expected, "samples": seen[0], "distinct_samples": seen[1], "verdicts": seen[2],
            "graded_samples": seen[3], "failed_batches": seen[4], "most_attempts": seen[5],
            "seconds": finished - start, "after_last_fault_s": finished - last_fault, "worker_starts": starts, **faults}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chaos-s", type=float, default=90.0, help="seconds of kills")
    parser.add_argument("--kill-every", type=lambda v: tuple(float(x) for x in v.split(":")), default=(3.0, 5.0),
                        metavar="MIN:MAX", help="seconds between two kills, drawn uniformly (default 3:5)")
    parser.add_argument("--models", type=int, default=2)
    parser.add_argument("--problems", type=int, default=40)
    parser.add_argument("-k", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=128, help="samples per queue message")
    parser.add_argument("--samplers", type=int, default=2, help="sampling workers per model")
    parser.add_argument("--graders", type=int, default=2)
    parser.add_argument("--delay", type=float, default=0.03, help="seconds per sample of the echo engine")
    parser.add_argument("--timeout-s", type=float, default=900.0)
    parser.add_argument("--restart-db", default=default_restart(), help="command that restarts PostgreSQL")
    parser.add_argument("--postgres", default=POSTGRES)
    parser.add_argument("--redis", default=REDIS)
    args = parser.parse_args()

    reference = one_run(args, chaos=False)
    print(f"  undisturbed: {reference}", flush=True)
    chaotic = one_run(args, chaos=True)
    print(f"  chaos:       {chaotic}", flush=True)
    exact = all(chaotic[key] == chaotic["expected"] for key in ("samples", "distinct_samples", "verdicts",
                                                                "graded_samples"))
    print(f"chaos: {chaotic['samples']}/{chaotic['expected']} samples, {chaotic['verdicts']}/{chaotic['expected']} "
          f"verdicts, {'each exactly once' if exact else 'NOT exact'}, {chaotic['failed_batches']} failed batches "
          f"(at most {chaotic['most_attempts']} attempts counted against one); "
          f"{chaotic['kills']} kills, {chaotic['flushes']} flush, {chaotic['db_restarts']} database restart; "
          f"finished {chaotic['after_last_fault_s']:.1f}s after the last fault, with no command typed")
    print(f"ratio {chaotic['seconds'] / reference['seconds']:.2f} (chaos {chaotic['seconds']:.1f}s vs undisturbed "
          f"{reference['seconds']:.1f}s)")


if __name__ == "__main__":
    main()
