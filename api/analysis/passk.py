"""The unbiased pass@k estimator in SQL, for every run and every k = 1, 2, 4, ..., n, with
bootstrap intervals over problems; the same query text on PostgreSQL and SQLite (how it works:
docs/reports.md)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sqlalchemy import bindparam, text
from sqlalchemy.orm import Session

from boundary.api.errors import ConfigError

_COUNTS = """
counts AS (
    SELECT v.run_id, v.problem_id, COUNT(*) AS n, SUM(CASE WHEN v.correct THEN 1 ELSE 0 END) AS c
    FROM verdicts v
    WHERE v.run_id IN :runs{problems}
    GROUP BY v.run_id, v.problem_id
)"""


def _counts(problem_ids: Sequence[int] | None) -> str:
    return _COUNTS.format(problems="" if problem_ids is None else " AND v.problem_id IN :problems")

_POWERS_GRID = """
powers(run_id, k) AS (
    SELECT run_id, 1 FROM run_n
    UNION ALL
    SELECT p.run_id, p.k * 2 FROM powers p JOIN run_n r ON r.run_id = p.run_id WHERE p.k * 2 < r.n_min
),
grid AS (SELECT run_id, k FROM powers UNION SELECT run_id, n_min FROM run_n)"""


def _given_grid(ks: Sequence[int]) -> str:
    values = " UNION ALL ".join(f"SELECT {int(k)} AS k" for k in ks)
    return f"grid AS (SELECT r.run_id, g.k FROM run_n r CROSS JOIN ({values}) g)"


_PER_PROBLEM_TEMPLATE = """
WITH RECURSIVE {counts},
run_n AS (SELECT run_id, MIN(n) AS n_min FROM counts GROUP BY run_id),
{grid},
seq(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM seq WHERE i < (SELECT MAX(n) FROM counts)),
lf AS (
    SELECT i, SUM(CASE WHEN i > 0 THEN LN(CAST(i AS DOUBLE PRECISION)) ELSE 0 END) OVER (ORDER BY i) AS v FROM seq
)
SELECT c.run_id, c.problem_id, g.k, c.n, c.c,
       CASE WHEN c.n - c.c < g.k THEN 1.0
            ELSE 1.0 - EXP((a.v - b.v) - (d.v - e.v)) END AS pass_at_k
FROM counts c
JOIN grid g ON g.run_id = c.run_id
LEFT JOIN lf a ON a.i = c.n - g.k
LEFT JOIN lf b ON b.i = c.n - c.c - g.k
JOIN lf d ON d.i = c.n
JOIN lf e ON e.i = c.n - c.c
"""


def _per_problem_sql(ks: Sequence[int] | None, problem_ids: Sequence[int] | None) -> str:
    grid = _POWERS_GRID if ks is None else _given_grid(ks)
    return _PER_PROBLEM_TEMPLATE.format(counts=_counts(problem_ids), grid=grid)


def _table_sql(ks: Sequence[int] | None, problem_ids: Sequence[int] | None) -> str:
    return (
        f"SELECT run_id, k, AVG(pass_at_k) AS pass_at_k, COUNT(*) AS problems "
        f"FROM ({_per_problem_sql(ks, problem_ids)}) per_problem GROUP BY run_id, k ORDER BY run_id, k"
    )


def _execute(session: Session, sql: str, run_ids: Sequence[int], problem_ids: Sequence[int] | None):
    statement = text(sql).bindparams(bindparam("runs", expanding=True))
    params: dict = {"runs": list(run_ids)}
    if problem_ids is not None:
        statement = statement.bindparams(bindparam("problems", expanding=True))
        params["problems"] = list(problem_ids)
    return session.execute(statement, params)


def largest_k(session: Session, run_ids: Sequence[int], problem_ids: Sequence[int] | None = None) -> dict[int, int]:
    """The largest k each run supports: the fewest graded samples any of its problems has."""
    if not run_ids:
        return {}
    sql = f"WITH {_counts(problem_ids)} SELECT run_id, MIN(n) AS n_min FROM counts GROUP BY run_id"
    return {r.run_id: int(r.n_min) for r in _execute(session, sql, run_ids, problem_ids)}


def check_ks(
    session: Session, run_ids: Sequence[int], ks: Sequence[int], problem_ids: Sequence[int] | None = None
) -> None:
    """Refuse k < 1, or a k some run cannot support (naming the largest possible k)."""
    limits = largest_k(session, run_ids, problem_ids)
    for k in ks:
        if k < 1:
            raise ConfigError(f"k must be >= 1, got {k}")
        for run_id in run_ids:
            if run_id not in limits:
                raise ConfigError(f"run {run_id} has no graded samples yet")
            if k > limits[run_id]:
                raise ConfigError(
                    f"k={k} is larger than run {run_id} allows: the largest possible k is {limits[run_id]}"
                )


@dataclass(frozen=True)
class PassAtK:
    run_id: int
    k: int
    value: float
    problems: int
    ci_low: float | None = None
    ci_high: float | None = None


def passk_table(
    session: Session, run_ids: Sequence[int], ks: Sequence[int] | None = None, problem_ids: Sequence[int] | None = None
) -> list[PassAtK]:
    """pass@k averaged over problems (all graded ones, or ``problem_ids``), for every run and
    k = 1, 2, 4, ..., n (n: the fewest graded samples any problem of the run has), or for the
    given ``ks``."""
    if not run_ids:
        return []
    if ks is not None:
        check_ks(session, run_ids, ks, problem_ids)
    rows = _execute(session, _table_sql(ks, problem_ids), run_ids, problem_ids).all()
    return [PassAtK(r.run_id, int(r.k), float(r.pass_at_k), int(r.problems)) for r in rows]


def per_problem(
    session: Session, run_ids: Sequence[int], ks: Sequence[int] | None = None, problem_ids: Sequence[int] | None = None
) -> dict[tuple[int, int], dict[int, float]]:
    """pass@k of every problem: {(run, k): {problem id: value}}."""
    out: dict[tuple[int, int], dict[int, float]] = {}
    if not run_ids:
        return out
    if ks is not None:
        check_ks(session, run_ids, ks, problem_ids)
    for r in _execute(session, _per_problem_sql(ks, problem_ids), run_ids, problem_ids):
        out.setdefault((r.run_id, int(r.k)), {})[r.problem_id] = float(r.pass_at_k)
    return out


def with_confidence(
    session: Session,
    run_ids: Sequence[int],
    ks: Sequence[int] | None = None,
    problem_ids: Sequence[int] | None = None,
    resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> list[PassAtK]:
    """pass@k with a percentile bootstrap interval over problems (problems resampled with
    replacement; the same resampling for every k of a run, so the intervals are comparable)."""
    values = per_problem(session, run_ids, ks, problem_ids)
    out = []
    for row in passk_table(session, run_ids, ks, problem_ids):
        problems = values[(row.run_id, row.k)]
        x = np.array([problems[pid] for pid in sorted(problems)], dtype=float)
        rng = np.random.default_rng([seed, row.run_id])
        picks = rng.integers(0, len(x), size=(resamples, len(x)))
        means = x[picks].mean(axis=1)
        low, high = np.quantile(means, [(1 - level) / 2, 1 - (1 - level) / 2])
        out.append(PassAtK(row.run_id, row.k, row.value, row.problems, float(low), float(high)))
    return out
