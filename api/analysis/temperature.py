"""Temperature sweeps: runs that differ only in temperature, pass@k at each, and the best
temperature for each k (the envelope), against the objection that one fixed temperature
favours one side."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.orm import Session

from boundary.api.analysis.estimator import k_grid
from boundary.api.analysis.passk import largest_k, passk_table
from boundary.api.analysis.runs import RunInfo, run_infos
from boundary.api.db import Database
from boundary.api.errors import ConfigError


@dataclass(frozen=True)
class Sweep:
    model: str
    benchmark: str
    template: str
    by_temperature: dict[float, dict[int, float]]
    """pass@k per temperature, on the k grid all runs support."""

    @property
    def ks(self) -> list[int]:
        return sorted(next(iter(self.by_temperature.values())))

    def envelope(self) -> dict[int, tuple[float, float]]:
        """For each k: (best pass@k, the temperature that gives it)."""
        out = {}
        for k in self.ks:
            t = max(self.by_temperature, key=lambda t: (self.by_temperature[t][k], -t))
            out[k] = (self.by_temperature[t][k], t)
        return out

    def to_dict(self) -> dict:
        return {
            "model": self.model, "benchmark": self.benchmark, "template": self.template,
            "pass_at_k": {str(t): {str(k): v for k, v in row.items()}
                          for t, row in sorted(self.by_temperature.items())},
            "envelope": {str(k): {"pass_at_k": v, "temperature": t} for k, (v, t) in self.envelope().items()},
        }


def sweeps(session: Session, runs: Sequence[RunInfo]) -> list[Sweep]:
    """One sweep per group of runs equal in everything but temperature (two temperatures at least);
    the sampler is part of the group, so a power sampler's proposal temperature never joins a
    plain sweep (and power runs, whose temperature is an option of theirs, sweep nothing)."""
    groups: dict[tuple, list[RunInfo]] = {}
    for r in runs:
        key = (r.model, r.benchmark_id, r.template, r.top_p, r.max_tokens, r.seed, r.engine, r.sampler,
               r.sampler_spec.canonical())
        groups.setdefault(key, []).append(r)
    out = []
    for members in groups.values():
        if len({m.temperature for m in members}) < 2:
            continue
        ids = [m.run_id for m in members]
        limits = largest_k(session, ids)
        if len(limits) < len(ids):
            continue  # a run without verdicts yet
        ks = k_grid(min(limits.values()))
        table = passk_table(session, ids, ks)
        temp_of = {m.run_id: m.temperature for m in members}
        by_t: dict[float, dict[int, float]] = {}
        for row in table:
            by_t.setdefault(temp_of[row.run_id], {})[row.k] = row.value
        first = members[0]
        out.append(Sweep(first.model, f"{first.benchmark} v{first.benchmark_version}", first.template, by_t))
    return out


def load_sweeps(
    db: Database, run_ids: Sequence[int] = (), benchmark: str | None = None, required: bool = True
) -> list[Sweep]:
    """The sweeps among the runs asked for (default: all); none is an error when ``required``."""
    with db.session() as session:
        items = sweeps(session, run_infos(session, run_ids, benchmark))
    if not items and required:
        raise ConfigError("no runs differ only in temperature: submit the same model at several temperatures")
    return items
