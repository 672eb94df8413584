"""A one-file HTML report: run parameters, pass@k tables with confidence intervals, figures as
inline SVG, solvable sets, histograms, temperature sweeps, the sampling-efficiency gap,
perplexity and the guessing baseline. No scripts, fonts or images from the network."""

from __future__ import annotations

from html import escape
from pathlib import Path
from typing import TYPE_CHECKING

from boundary.api import __version__
from boundary.api.analysis.bundle import Analysis
from boundary.api.analysis.runs import RunInfo
from boundary.api.db.schema import utcnow
from boundary.api.render import plots

if TYPE_CHECKING:
    from matplotlib.figure import Figure

STYLE = """
body { font-family: system-ui, -apple-system, Segoe UI, Roboto, sans-serif; margin: 2rem auto; max-width: 1100px;
       color: #222; line-height: 1.4; padding: 0 1rem; }
h1 { font-size: 1.6rem; } h2 { border-bottom: 1px solid #ddd; padding-bottom: .2rem; margin-top: 2.2rem; }
table { border-collapse: collapse; margin: .6rem 0 1rem; font-size: .85rem; }
th, td { border: 1px solid #ddd; padding: .25rem .5rem; text-align: right; }
th { background: #f4f4f4; } td.l, th.l { text-align: left; }
.partial { color: #b35c00; font-weight: 600; } .flag { color: #b00020; }
figure { margin: .5rem 0 1.5rem; } figure svg { max-width: 100%; height: auto; }
details { margin: .3rem 0; } code { font-size: .8rem; word-break: break-all; }
.note { color: #666; font-size: .85rem; }
"""


def _table(headers: list[str], rows: list[list[str]], left: int = 0) -> str:
    head = "".join(f'<th class="{"l" if i < left else ""}">{escape(h)}</th>' for i, h in enumerate(headers))
    body = "".join(
        "<tr>" + "".join(f'<td class="{"l" if i < left else ""}">{cell}</td>' for i, cell in enumerate(row)) + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _figure(kind: str, fig: Figure) -> str:
    return f'<figure class="plot" data-plot="{kind}">{plots.svg(fig)}</figure>'


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}"


def _mean(value: float | None) -> str:
    return "–" if value is None else f"{value:,.1f}"


def _sampler_cell(r: RunInfo) -> str:
    """The sampler's label, and under it its resolved options as stored (none for plain)."""
    spec = r.sampler_spec
    if spec.is_plain:
        return escape(spec.label())
    return f"{escape(spec.label())}<br><small><code>{escape(spec.canonical())}</code></small>"


def _stats_cell(stats: dict[str, float | None]) -> str:
    return ", ".join(f"{escape(k)} {'–' if v is None else f'{v:.3g}'}" for k, v in stats.items()) or "–"


def _runs_section(a: Analysis) -> str:
    status = {r.run_id: r for r in a.reports}
    rows = []
    for r in a.runs:
        s = status[r.run_id]
        rows.append([str(r.run_id), escape(r.model), escape(r.role), escape(f"{r.benchmark} v{r.benchmark_version}"),
                     escape(r.template), _sampler_cell(r), f"{r.temperature:g}", f"{r.top_p:g}", str(r.max_tokens),
                     str(r.n), str(r.seed), escape(r.engine), str(s.problems), str(s.graded),
                     _mean(s.mean_decoded_tokens), _mean(s.mean_prefill_tokens), _mean(s.mean_engine_calls),
                     _stats_cell(s.mean_sampler_stats),
                     '<span class="partial">partial</span>' if s.partial else "complete"])
    return ("<h2>Runs</h2><p class='note'>Per sample, over the samples counted: tokens decoded (rejected proposals and "
            "discarded particles included), context tokens sent, engine calls, and the sampler's mean "
            "diagnostics.</p>" + _table(
                ["run", "model", "role", "benchmark", "template", "sampler", "T", "top_p", "max tokens", "n", "seed",
                 "engine", "problems", "graded", "tok/sample", "prefill/sample", "calls/sample", "sampler stats",
                 "status"], rows, left=6))


def _passk_section(a: Analysis) -> str:
    out = ["<h2>pass@k</h2><p class='note'>Unbiased estimator, averaged over problems; 95% bootstrap intervals "
           "over problems in brackets.</p>"]
    for bench in a.benchmarks():
        runs, table = a.on_benchmark(bench)
        ks = sorted({p.k for p in table})
        cell = {(p.run_id, p.k): p for p in table}
        rows = []
        for r in runs:
            row = [escape(r.label), escape(r.role)]
            for k in ks:
                p = cell.get((r.run_id, k))
                row.append("–" if p is None
                           else f"{_pct(p.value)}<br><small>[{_pct(p.ci_low)}, {_pct(p.ci_high)}]</small>")
            rows.append(row)
        out.append(f"<h3>{escape(bench)}</h3>")
        out.append(_figure("passk", plots.passk_curves(bench, runs, table)))
        out.append(_table(["model", "role", *[f"@{k}" for k in ks]], rows, left=2))
    return "".join(out)


def _solvable_section(a: Analysis) -> str:
    if not a.solvable:
        return ("<h2>Solvable problems</h2><p class='note'>Needs a base model and an RL-trained, distilled or instruct "
                "model on the same benchmark.</p>")
    out = ["<h2>Solvable problems</h2>"]
    for bench, s in a.solvable.items():
        out.append(f"<h3>{escape(bench)}: {escape(s.first)} vs {escape(s.second)}</h3>")
        runs, _ = a.on_benchmark(bench)
        pooled = [f"{escape(role)}: " + ", ".join(f"run {r.run_id} {escape(r.label)}" for r in runs if r.role == role)
                  for role in (s.first, s.second)]
        out.append(f"<p class='note'>A problem is solved by a role when any run of it solves it; pooled: "
                   f"{'; '.join(pooled)}.</p>")
        rows = [[escape(label), str(len(keys)), f"{100 * len(keys) / s.total:.1f}" if s.total else "–"]
                for label, keys in (("both", s.both), (f"{s.first} only", s.only_first),
                                    (f"{s.second} only", s.only_second), ("neither", s.neither))]
        out.append(_table(["solved by", "problems", "%"], rows, left=1))
        for label, keys in ((f"{s.first} only", s.only_first), (f"{s.second} only", s.only_second),
                            ("neither", s.neither)):
            out.append(f"<details><summary>{escape(label)} ({len(keys)})</summary>"
                       f"<code>{escape(', '.join(keys))}</code></details>")
    return "".join(out)


def _histogram_section(a: Analysis) -> str:
    rows = [[escape(next(r.label for r in a.runs if r.run_id == h.run_id)), *map(str, h.counts),
             f"{100 * h.never_solved_share:.1f}"] for h in a.histograms]
    return ("<h2>Per-problem accuracy</h2>"
            + _figure("histogram", plots.accuracy_histograms(a.runs, a.histograms))
            + _table(["run", *[f"{i / 10:.1f}" for i in range(10)], "never solved %"], rows, left=1))


def _sweep_section(a: Analysis) -> str:
    if not a.sweeps:
        return ""
    out = ["<h2>Temperature</h2>"]
    for sweep in a.sweeps:
        out.append(_figure("temperature", plots.temperature_envelope(sweep)))
        env = sweep.envelope()
        out.append(_table(["k", "best pass@k", "at T"], [[str(k), _pct(v), f"{t:g}"] for k, (v, t) in env.items()]))
    return "".join(out)


def _gap_section(a: Analysis) -> str:
    if not a.gaps:
        return ""
    label = {r.run_id: r.label for r in a.runs}
    rows = [[escape(label[g.rl_run]), escape(label[g.base_run]), str(g.k), _pct(g.rl_pass_at_1), _pct(g.base_pass_at_k),
             f"{100 * g.delta:+.1f}"] for g in a.gaps]
    return ("<h2>Sampling-efficiency gap</h2>"
            "<p class='note'>ΔSE = pass@1 of the RL model − pass@k of its base model.</p>"
            + _table(["RL run", "base run", "k", "RL pass@1", "base pass@k", "ΔSE"], rows, left=2))


def _perplexity_section(a: Analysis) -> str:
    if not a.perplexity:
        return ""
    rows = [[escape(d.scorer), escape(d.model), escape(d.role), "yes" if d.own else "no", str(d.samples),
             f"{d.mean:.3f}", f"{d.q25:.3f}", f"{d.median:.3f}", f"{d.q75:.3f}"] for d in a.perplexity]
    return ("<h2>Perplexity under a scoring model</h2>"
            + _table(["scorer", "samples of", "role", "own", "samples", "mean", "q25", "median", "q75"], rows, left=4))


def _guess_section(a: Analysis) -> str:
    out = ["<h2>Guessing baseline</h2><p class='note'>Per problem, pass@k of drawing answers from the model's own "
           "answer distribution (all its samples) without reasoning. Flagged: the model beats guessing by under "
           "5 points.</p>"]
    label = {r.run_id: r.label for r in a.runs}
    rows = []
    for rid, (k, guesses) in a.guesses.items():
        flagged = [g.problem for g in guesses if g.indistinguishable]
        rows.append([escape(label[rid]), str(k), str(len(guesses)), f'<span class="flag">{len(flagged)}</span>',
                     f"<code>{escape(', '.join(flagged[:30]))}{' …' if len(flagged) > 30 else ''}</code>"])
    return "".join(out) + _table(["run", "k", "problems", "flagged", "flagged problems"], rows, left=1)


def render(a: Analysis) -> str:
    sections = [_runs_section(a), _passk_section(a), _solvable_section(a), _histogram_section(a), _sweep_section(a),
                _gap_section(a), _perplexity_section(a), _guess_section(a)]
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>boundary report</title><style>{STYLE}</style></head><body>"
        f"<h1>Reasoning boundary report</h1><p class='note'>boundary {escape(__version__)}, "
        f"{escape(utcnow().strftime('%Y-%m-%d %H:%M UTC'))}; {len(a.runs)} runs on "
        f"{', '.join(map(escape, a.benchmarks()))}.</p>"
        + "".join(sections) + "</body></html>"
    )


def write(a: Analysis, path: Path) -> None:
    Path(path).write_text(render(a), encoding="utf-8")
