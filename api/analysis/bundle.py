"""Every analysis of a set of runs at once: what the HTML report and the figures show."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from boundary.api.analysis.audit import GuessRow, guess_baseline
from boundary.api.analysis.gap import Gap, sampling_efficiency_gap
from boundary.api.analysis.histogram import Histogram, histograms
from boundary.api.analysis.passk import PassAtK, largest_k, with_confidence
from boundary.api.analysis.perplexity import Distribution, perplexities
from boundary.api.analysis.report import RunReport, run_report
from boundary.api.analysis.runs import RunInfo, run_infos
from boundary.api.analysis.solvable import SolvableSets, solvable_sets
from boundary.api.analysis.temperature import Sweep, sweeps
from boundary.api.db import Database, schema
from boundary.api.errors import ConfigError
from boundary.api.samplers import PLAIN


@dataclass
class Analysis:
    runs: list[RunInfo]
    reports: list[RunReport]
    passk: list[PassAtK]
    histograms: list[Histogram]
    solvable: dict[str, SolvableSets] = field(default_factory=dict)
    sweeps: list[Sweep] = field(default_factory=list)
    gaps: list[Gap] = field(default_factory=list)
    perplexity: list[Distribution] = field(default_factory=list)
    guesses: dict[int, tuple[int, list[GuessRow]]] = field(default_factory=dict)

    def benchmarks(self) -> list[str]:
        return sorted({f"{r.benchmark} v{r.benchmark_version}" for r in self.runs})

    def on_benchmark(self, benchmark: str) -> tuple[list[RunInfo], list[PassAtK]]:
        """The runs on one benchmark version (named as ``benchmarks()`` names it), and their pass@k."""
        runs = [r for r in self.runs if f"{r.benchmark} v{r.benchmark_version}" == benchmark]
        ids = {r.run_id for r in runs}
        return runs, [p for p in self.passk if p.run_id in ids]


def gap_pair(rl: RunInfo, base: RunInfo) -> bool:
    """Whether the report shows the sampling-efficiency gap of ``rl`` against ``base``: plain runs
    at the same temperature (Yue et al.), and every power-sampled base run against each plain RL
    run, whatever its proposal temperature (does sharpened sampling of the base reach RL?)."""
    if rl.sampler != PLAIN:
        return False
    return base.sampler != PLAIN or base.temperature == rl.temperature


def analyse(
    session: Session, run_ids: Sequence[int] = (), benchmark: str | None = None, resamples: int = 1000
) -> Analysis:
    runs = run_infos(session, run_ids, benchmark)
    graded = largest_k(session, [r.run_id for r in runs])
    runs = [r for r in runs if r.run_id in graded]
    if not runs:
        raise ConfigError("no graded runs to report on")
    ids = [r.run_id for r in runs]
    analysis = Analysis(
        runs=runs,
        reports=[run_report(session, rid) for rid in ids],
        passk=with_confidence(session, ids, resamples=resamples),
        histograms=histograms(session, ids),
        sweeps=sweeps(session, runs),
    )
    by_bench: dict[str, list[RunInfo]] = {}
    for r in runs:
        by_bench.setdefault(f"{r.benchmark} v{r.benchmark_version}", []).append(r)
    for name, members in by_bench.items():
        roles = {m.role for m in members}
        second = next((role for role in ("rlvr", "distilled", "instruct") if role in roles), None)
        if "base" in roles and second:
            analysis.solvable[name] = solvable_sets(session, [m.run_id for m in members], "base", second)
        for rl in (m for m in members if m.role in ("rlvr", "distilled")):
            for base in (m for m in members if m.role == "base" and gap_pair(rl, m)):
                k = min(graded[rl.run_id], graded[base.run_id])
                analysis.gaps.append(sampling_efficiency_gap(session, rl.run_id, base.run_id, k))
    scorers = session.scalars(select(schema.Score.scorer_id).where(schema.Score.run_id.in_(ids)).distinct()).all()
    for scorer_id in scorers:
        analysis.perplexity += perplexities(session, scorer_id, ids)
    for rid in ids:
        analysis.guesses[rid] = guess_baseline(session, rid)
    return analysis


def load_analysis(db: Database, run_ids: Sequence[int]) -> Analysis:
    """Every analysis of the runs that `boundary report` found (``run_ids``: none is an error)."""
    if not run_ids:
        raise ConfigError("no runs to report on")
    with db.session() as session:
        return analyse(session, run_ids)
