"""Per-problem accuracy histograms: how many problems a model solves in 0-10% of its samples,
10-20%, ..., and the share it never solves."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import bindparam, text
from sqlalchemy.orm import Session

from boundary.api.analysis.runs import RunInfo, run_infos
from boundary.api.db import Database

BINS = 10

_ACCURACY = """
SELECT run_id, problem_id, COUNT(*) AS n, SUM(CASE WHEN correct THEN 1 ELSE 0 END) AS c
FROM verdicts WHERE run_id IN :runs GROUP BY run_id, problem_id
"""


@dataclass(frozen=True)
class Histogram:
    run_id: int
    counts: list[int]
    """Problems per accuracy bin [0, 0.1), [0.1, 0.2), ..., [0.9, 1.0]."""
    never_solved: int
    problems: int

    @property
    def never_solved_share(self) -> float:
        return self.never_solved / self.problems if self.problems else 0.0

    def to_dict(self) -> dict:
        return {"run_id": self.run_id, "bins": [round(i / BINS, 1) for i in range(BINS)], "counts": self.counts,
                "never_solved": self.never_solved, "never_solved_share": self.never_solved_share,
                "problems": self.problems}


def accuracy_bin(n: int, c: int) -> int:
    """The bin of accuracy c/n; exactly 1.0 falls in the last bin. Integer arithmetic, so the
    edges (0.1, 0.2, ...) fall the same way on every database."""
    return min(BINS - 1, (BINS * c) // n)


def histograms(session: Session, run_ids: Sequence[int]) -> list[Histogram]:
    rows = session.execute(text(_ACCURACY).bindparams(bindparam("runs", expanding=True)), {"runs": list(run_ids)}).all()
    by_run: dict[int, list[tuple[int, int]]] = {rid: [] for rid in run_ids}
    for r in rows:
        by_run[r.run_id].append((int(r.n), int(r.c)))
    out = []
    for run_id in run_ids:
        counts = [0] * BINS
        for n, c in by_run[run_id]:
            counts[accuracy_bin(n, c)] += 1
        never = sum(1 for _, c in by_run[run_id] if c == 0)
        out.append(Histogram(run_id, counts, never, len(by_run[run_id])))
    return out


def load_histograms(db: Database, run_ids: Sequence[int] = ()) -> tuple[list[RunInfo], list[Histogram]]:
    """The runs asked for (default: all) and their histograms, in the same order."""
    with db.session() as session:
        runs = run_infos(session, run_ids)
        return runs, histograms(session, [r.run_id for r in runs])
