"""The analyses as plain text, line by line as the `boundary report` subcommands and `boundary
audit` print them. Each function returns the whole text, every line ending in a newline."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from boundary.api.analysis.audit import Audit
from boundary.api.analysis.gap import Gap
from boundary.api.analysis.histogram import Histogram
from boundary.api.analysis.perplexity import Distribution
from boundary.api.analysis.runs import RunInfo
from boundary.api.analysis.solvable import SolvableSets
from boundary.api.analysis.temperature import Sweep


def _lines(lines: Sequence[str]) -> str:
    return "".join(f"{line}\n" for line in lines)


def solvable(sets: SolvableSets, show_list: bool = False) -> str:
    """One line per set (both, first only, second only, neither), then the coverage of each role."""
    first, second = sets.first, sets.second
    lines = [f"{label:<16} {len(keys):>6}" + (f"  {', '.join(keys)}" if show_list else "")
             for label, keys in (("both", sets.both), (f"{first} only", sets.only_first),
                                 (f"{second} only", sets.only_second), ("neither", sets.neither))]
    lines.append(f"coverage: {first} {100 * sets.coverage(first):.1f}%, {second} {100 * sets.coverage(second):.1f}% "
                 f"of {sets.total} problems")
    return _lines(lines)


def histograms(runs: Sequence[RunInfo], items: Sequence[Histogram]) -> str:
    """A header of bins, then one line per run: its problems per bin and the share never solved."""
    labels = {r.run_id: r.label for r in runs}
    width = max([32, *(len(labels[h.run_id]) + 1 for h in items)])  # a sampler's label can be long
    lines = [f"{'run':<{width}}" + "".join(f"{i / 10:>6.1f}" for i in range(10)) + "  never solved"]
    lines += [f"{labels[h.run_id]:<{width}}" + "".join(f"{c:>6}" for c in h.counts)
              + f"  {100 * h.never_solved_share:.1f}%" for h in items]
    return _lines(lines)


def gap(result: Gap) -> str:
    return _lines([f"dSE = {100 * result.rl_pass_at_1:.1f} (run {result.rl_run}, pass@1) - "
                   f"{100 * result.base_pass_at_k:.1f} (run {result.base_run}, pass@{result.k}) = "
                   f"{100 * result.delta:+.1f} points"])


def sweeps(items: Sequence[Sweep]) -> str:
    """Per sweep: a title, a header of temperatures, and per k the pass@k at each and the best."""
    lines = []
    for s in items:
        lines.append(f"{s.model} on {s.benchmark} ({s.template})")
        temps = sorted(s.by_temperature)
        lines.append(f"{'k':>6}" + "".join(f"{'T=' + format(t, 'g'):>9}" for t in temps) + "     best")
        for k, (value, t) in s.envelope().items():
            cells = "".join(f"{100 * s.by_temperature[x][k]:>9.1f}" for x in temps)
            lines.append(f"{k:>6}{cells}  {100 * value:>5.1f} at T={t:g}")
    return _lines(lines)


def perplexities(items: Sequence[Distribution]) -> str:
    """One line per run: its samples' perplexity under the scorer (mean and quartiles)."""
    lines = [f"{'run':>4} {'model':<24} {'role':<10} {'samples':>8} {'mean':>8} {'q25':>8} {'median':>8} {'q75':>8}"]
    for d in items:
        own = " (own)" if d.own else ""
        lines.append(f"{d.run_id:>4} {d.model + own:<24} {d.role:<10} {d.samples:>8} {d.mean:>8.3f} {d.q25:>8.3f} "
                     f"{d.median:>8.3f} {d.q75:>8.3f}")
    return _lines(lines)


def audit(result: Audit, output: Path | None = None) -> str:
    """Per run, the problems where pass@k is no better than guessing; then the review set's size."""
    lines = []
    for r in result.runs:
        k, rows = result.baselines[r.run_id]
        flagged = [g.problem for g in rows if g.indistinguishable]
        lines.append(f"run {r.run_id} {r.label}: pass@{k} no better than guessing on {len(flagged)} of {len(rows)} "
                     "problems" + (f": {', '.join(flagged[:20])}" if flagged else ""))
    lines.append(f"review set: {len(result.review)} correct samples"
                 + (f" written to {output}" if output else " (use --output FILE)"))
    return _lines(lines)
