"""Figures, with matplotlib: pass@k curves on a log2 k axis, one line per model styled by its
role (as in Yue et al.'s Figure 2), per-problem accuracy histograms, and temperature
envelopes. Each figure is saved as PNG and SVG, or returned as SVG text for the HTML report."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from boundary.api.analysis.bundle import Analysis  # noqa: E402
from boundary.api.analysis.histogram import BINS, Histogram  # noqa: E402
from boundary.api.analysis.passk import PassAtK  # noqa: E402
from boundary.api.analysis.runs import RunInfo  # noqa: E402
from boundary.api.analysis.temperature import Sweep  # noqa: E402

ROLE_STYLE = {
    "base": {"color": "#1f77b4", "linestyle": "--", "marker": "o"},
    "rlvr": {"color": "#d62728", "linestyle": "-", "marker": "s"},
    "distilled": {"color": "#2ca02c", "linestyle": "-.", "marker": "^"},
    "instruct": {"color": "#9467bd", "linestyle": ":", "marker": "D"},
    "other": {"color": "#7f7f7f", "linestyle": "-", "marker": "x"},
}


MARKERS = ("o", "s", "^", "D", "v", "P", "X")


def _style(role: str, index: int) -> dict:
    """The role's style; the second, third... run of a role gets a lighter shade and another marker."""
    style = dict(ROLE_STYLE.get(role, ROLE_STYLE["other"]))
    if index:
        rgb = matplotlib.colors.to_rgb(style["color"])
        shade = min(0.6, 0.28 * index)
        style["color"] = tuple(c + (1 - c) * shade for c in rgb)
        style["marker"] = MARKERS[index % len(MARKERS)]
    return style


def passk_curves(benchmark: str, runs: Sequence[RunInfo], table: Sequence[PassAtK]) -> Figure:
    """pass@k against k (log2 axis) for the runs of one benchmark, with bootstrap bands."""
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=110)
    seen: dict[str, int] = {}
    for run in runs:
        rows = sorted((r for r in table if r.run_id == run.run_id), key=lambda r: r.k)
        if not rows:
            continue
        style = _style(run.role, seen.get(run.role, 0))
        seen[run.role] = seen.get(run.role, 0) + 1
        ks = [r.k for r in rows]
        ax.plot(ks, [100 * r.value for r in rows], label=f"{run.label} [{run.role}]", markersize=4, **style)
        if all(r.ci_low is not None for r in rows):
            ax.fill_between(ks, [100 * r.ci_low for r in rows], [100 * r.ci_high for r in rows],
                            color=style["color"], alpha=0.12, linewidth=0)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("k (samples)")
    ax.set_ylabel("pass@k (%)")
    ax.set_title(benchmark)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return fig


def accuracy_histograms(runs: Sequence[RunInfo], histograms: Sequence[Histogram]) -> Figure:
    """Problems per accuracy bin, one panel per run."""
    fig, axes = plt.subplots(1, max(1, len(histograms)), figsize=(3.2 * max(1, len(histograms)), 3.0), dpi=110,
                             squeeze=False)
    info = {r.run_id: r for r in runs}
    seen: dict[str, int] = {}
    for ax, h in zip(axes[0], histograms, strict=False):
        run = info[h.run_id]
        style = _style(run.role, seen.get(run.role, 0))
        seen[run.role] = seen.get(run.role, 0) + 1
        ax.bar([i / BINS + 0.05 for i in range(BINS)], h.counts, width=0.09, color=style["color"])
        ax.set_xlabel("accuracy")
        ax.set_xlim(0, 1)
        ax.set_title(f"{run.model}, {run.benchmark} T={run.temperature:g}\n"
                     f"never solved: {100 * h.never_solved_share:.0f}%", fontsize=8)
    axes[0][0].set_ylabel("problems")
    fig.tight_layout()
    return fig


def temperature_envelope(sweep: Sweep) -> Figure:
    """pass@k per temperature, and the best temperature at each k."""
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=110)
    for t, row in sorted(sweep.by_temperature.items()):
        ks = sorted(row)
        ax.plot(ks, [100 * row[k] for k in ks], marker="o", markersize=3, linewidth=1, label=f"T={t:g}")
    envelope = sweep.envelope()
    ks = sorted(envelope)
    ax.plot(ks, [100 * envelope[k][0] for k in ks], color="black", linewidth=2.2, alpha=0.6, label="best T per k")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("k (samples)")
    ax.set_ylabel("pass@k (%)")
    ax.set_title(f"{sweep.model} on {sweep.benchmark}")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return fig


def save(fig: Figure, stem: Path) -> list[Path]:
    """``stem``.png and ``stem``.svg."""
    paths = [stem.with_suffix(".png"), stem.with_suffix(".svg")]
    for path in paths:
        fig.savefig(path)
    plt.close(fig)
    return paths


def write_figures(analysis: Analysis, folder: Path) -> list[Path]:
    """Every figure of the analysis into ``folder`` (made if missing): a pass@k figure per
    benchmark version, the accuracy histograms, one figure per temperature sweep."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for bench in analysis.benchmarks():
        written += save(passk_curves(bench, *analysis.on_benchmark(bench)), folder / f"passk-{bench.replace(' ', '-')}")
    written += save(accuracy_histograms(analysis.runs, analysis.histograms), folder / "accuracy")
    for i, sweep in enumerate(analysis.sweeps):
        written += save(temperature_envelope(sweep), folder / f"temperature-{i + 1}")
    return written


def svg(fig: Figure) -> str:
    """The figure as inline SVG text (no external references)."""
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg")
    plt.close(fig)
    text = buffer.getvalue()
    return text[text.index("<svg"):]
