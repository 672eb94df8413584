"""Solvable sets across roles (Yue et al., Tables 4-5): which problems base models solve,
which RL-trained (or distilled) models solve, both, or neither. A problem is solved by a role
when any sample of any run of a model with that role is correct."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import bindparam, text
from sqlalchemy.orm import Session

from boundary.api.analysis.runs import run_infos
from boundary.api.db import Database
from boundary.api.errors import ConfigError

_SOLVED = """
SELECT p.key AS problem, m.role AS role, MAX(CASE WHEN v.correct THEN 1 ELSE 0 END) AS solved
FROM verdicts v
JOIN runs r ON r.id = v.run_id
JOIN models m ON m.id = r.model_id
JOIN problems p ON p.id = v.problem_id
WHERE r.id IN :runs AND m.role IN (:first, :second)
GROUP BY p.key, m.role
"""


@dataclass(frozen=True)
class SolvableSets:
    first: str
    second: str
    both: list[str] = field(default_factory=list)
    only_first: list[str] = field(default_factory=list)
    only_second: list[str] = field(default_factory=list)
    neither: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return len(self.both) + len(self.only_first) + len(self.only_second) + len(self.neither)

    def coverage(self, role: str) -> float:
        solved = len(self.both) + len(self.only_first if role == self.first else self.only_second)
        return solved / self.total if self.total else 0.0

    def to_dict(self) -> dict:
        return {
            "first": self.first, "second": self.second, "total": self.total,
            "both": self.both, f"{self.first}_only": self.only_first, f"{self.second}_only": self.only_second,
            "neither": self.neither,
            "coverage": {self.first: self.coverage(self.first), self.second: self.coverage(self.second)},
        }


def solvable_sets(session: Session, run_ids: Sequence[int], first: str = "base", second: str = "rlvr") -> SolvableSets:
    """Partition the problems graded for both roles among ``run_ids`` (runs of one benchmark)."""
    if first == second:
        raise ConfigError("compare two different roles")
    rows = session.execute(
        text(_SOLVED).bindparams(bindparam("runs", expanding=True)),
        {"runs": list(run_ids), "first": first, "second": second},
    ).all()
    solved: dict[str, dict[str, bool]] = {}
    for problem, role, value in rows:
        solved.setdefault(problem, {})[role] = bool(value)
    roles_seen = {role for by_role in solved.values() for role in by_role}
    for role in (first, second):
        if role not in roles_seen:
            raise ConfigError(f"no graded run of a '{role}' model among the runs compared")
    out = SolvableSets(first, second)
    for problem in sorted(solved, key=_natural):
        by_role = solved[problem]
        if first not in by_role or second not in by_role:
            continue  # graded for one role only: not comparable
        bucket = {(True, True): out.both, (True, False): out.only_first, (False, True): out.only_second,
                  (False, False): out.neither}[(by_role[first], by_role[second])]
        bucket.append(problem)
    return out


def load_solvable(db: Database, run_ids: Sequence[int] = (), benchmark: str | None = None, first: str = "base",
                  second: str = "rlvr") -> SolvableSets:
    """The solvable sets of the runs asked for, which must cover one benchmark version."""
    with db.session() as session:
        runs = run_infos(session, run_ids, benchmark)
        versions = {(r.benchmark, r.benchmark_version) for r in runs}
        if len(versions) != 1:
            raise ConfigError(
                f"the runs cover {len(versions)} benchmark versions: choose one with --benchmark or --run"
            )
        return solvable_sets(session, [r.run_id for r in runs], first, second)


def _natural(key: str) -> tuple:
    """'gsm8k/test/10' after 'gsm8k/test/9'."""
    import re

    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", key))
