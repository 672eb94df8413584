"""pass@k of millions of samples in PostgreSQL: the full table (every run, every k) against a
single COUNT(*) scan of the verdicts, measured in the same run on the same data.

Builds a synthetic database (default: 4 models x 2,500 problems x 1,024 samples = 10.24
million samples and verdicts) with SQL, then times both queries warm (median of 5).

    python bench/passk.py [--models 4] [--problems 2500] [-k 1024]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import uuid

from sqlalchemy import text
from sqlalchemy.engine import make_url

from boundary.api.analysis.passk import passk_table
from boundary.api.db import Database


def build(db: Database, models: int, problems: int, k: int) -> list[int]:
    with db.engine.begin() as conn:
        conn.execute(text("SET LOCAL synchronous_commit = off"))
        conn.execute(text("INSERT INTO benchmarks "
                          "(name, version, kind, source, content_hash, num_problems, created_at) "
                          "VALUES ('synthetic', 1, 'math', 'bench', 'h', :p, now())"), {"p": problems})
        conn.execute(text("INSERT INTO problems (benchmark_id, position, key, question, answer, record, content_hash) "
                          "SELECT 1, i, 'q' || i, 'question ' || i, '1', '{}', 'x' FROM generate_series(1, :p) i"),
                     {"p": problems})
        for m in range(1, models + 1):
            conn.execute(text("INSERT INTO models (name, path, role, created_at) VALUES (:n, 'synthetic', :r, now())"),
                         {"n": f"model-{m}", "r": "base" if m == 1 else "rlvr"})
            conn.execute(text("INSERT INTO runs (model_id, benchmark_id, temperature, top_p, max_tokens, n, seed, "
                              "prompt_template, engine, engine_options, created_at) "
                              "VALUES (:m, 1, 0.6, 0.95, 1024, :k, 0, 'boxed', 'echo', '{}', now())"), {"m": m, "k": k})
        conn.execute(text("INSERT INTO run_problems (run_id, problem_id, prompt, seed) "
                          "SELECT r.id, p.id, 'prompt', 0 FROM runs r CROSS JOIN problems p"))
    with db.engine.begin() as conn:
        conn.execute(text("SET LOCAL synchronous_commit = off"))
        conn.execute(text(
            "INSERT INTO samples (run_id, problem_id, sample_index, text, num_tokens, finish_reason, created_at) "
            "SELECT r.id, p.id, i, 'sample', 1, 'stop', now() FROM runs r CROSS JOIN problems p "
            "CROSS JOIN generate_series(0, :k - 1) i"), {"k": k})
    with db.engine.begin() as conn:
        conn.execute(text("SET LOCAL synchronous_commit = off"))
        # each (run, problem) has its own success rate: a reasoning-boundary-like spread of 0..1
        conn.execute(text(
            "INSERT INTO verdicts "
            "(sample_id, run_id, problem_id, correct, grader, grader_version, duration_s, created_at) "
            "SELECT s.id, s.run_id, s.problem_id, "
            "  (hashtext(s.id::text) & 1023) < "
            "((hashtext(s.run_id || ':' || s.problem_id) & 1023) * (s.problem_id % 3)) / 2, "
            "  'synthetic', '1', 0, now() FROM samples s"))
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE"))
    with db.engine.connect() as conn:
        return [r for (r,) in conn.execute(text("SELECT id FROM runs ORDER BY id"))]


def timed(fn, repeats: int = 5) -> float:
    fn()  # warm
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=int, default=4)
    parser.add_argument("--problems", type=int, default=2500)
    parser.add_argument("-k", type=int, default=1024)
    parser.add_argument("--postgres", default=os.environ.get("BOUNDARY_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"))
    args = parser.parse_args()
    admin = Database.connect(args.postgres, auto_migrate=False, check=False)
    name = f"boundary_bench_{uuid.uuid4().hex[:8]}"
    with admin.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        db = Database.connect(make_url(args.postgres).set(database=name).render_as_string(hide_password=False),
                              auto_migrate=True)
        start = time.perf_counter()
        run_ids = build(db, args.models, args.problems, args.k)
        rows = args.models * args.problems * args.k
        print(f"built {rows:,} samples and verdicts in {time.perf_counter() - start:.0f}s")

        def count() -> int:
            with db.engine.connect() as conn:
                return conn.execute(text("SELECT COUNT(*) FROM verdicts")).scalar()

        def table() -> list:
            with db.session() as session:
                return passk_table(session, run_ids)

        assert count() == rows
        result = table()
        assert len(result) == args.models * (
            args.k.bit_length() if args.k & (args.k - 1) == 0 else args.k.bit_length() + 1
        )
        t_count, t_table = timed(count), timed(table)
        db.dispose()
    finally:
        with admin.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
    print(f"COUNT(*) of verdicts: {t_count:.3f}s; "
          f"pass@k table ({len(result)} rows: {args.models} runs x every k): {t_table:.3f}s")
    print(f"ratio {t_table / t_count:.2f} "
          f"(pass@k table {t_table:.3f}s vs COUNT(*) {t_count:.3f}s on {rows:,} verdicts)")


if __name__ == "__main__":
    main()
