"""`boundary report` (pass@k tables, analyses, the HTML report and figures), `boundary audit`
and `boundary export`."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
from sqlalchemy.orm import Session

from boundary.api.cli.options import Group, database_option
from boundary.api.config import Settings
from boundary.api.errors import ConfigError

EXAMPLES = """\b
Examples:
  boundary report
  boundary report --benchmark gsm8k --ci --json
  boundary report --run 3 --csv > run3.csv
  boundary report --html report.html --plots figures/
  boundary report solvable --benchmark math500
  boundary report gap --rl 4 --base 3 -k 256"""


@contextmanager
def _session(database_url: str | None) -> Iterator[Session]:
    from boundary.api.db import Database

    db = Database.connect(Settings.build(database_url, None, None).database_url)
    try:
        with db.session() as session:
            yield session
    finally:
        db.dispose()


def _emit(as_json: bool, data: Any, human: Callable[[], None]) -> None:
    if as_json:
        click.echo(json.dumps(data, indent=2))
    else:
        human()


def _runs_option(f: Callable) -> Callable:
    return click.option("--run", "run_ids", type=int, multiple=True, help="Only this run id (repeatable).")(f)


@click.group(cls=Group, invoke_without_command=True, epilog=EXAMPLES)
@_runs_option
@click.option("--model", help="Only runs of this model name.")
@click.option("--benchmark", help="Only runs on this benchmark name.")
@click.option("--ci", is_flag=True, help="Add 95% bootstrap intervals over problems.")
@click.option("--json", "as_json", is_flag=True, help="JSON: one object per run.")
@click.option("--csv", "as_csv", is_flag=True, help="CSV, one row per (run, k).")
@click.option("--html", "html_path", type=click.Path(dir_okay=False, path_type=Path), help="Write the full report as one HTML file.")
@click.option("--plots", "plots_dir", type=click.Path(file_okay=False, path_type=Path), help="Write the figures (PNG and SVG) here.")
@database_option
@click.pass_context
def report(ctx: click.Context, run_ids: tuple[int, ...], model: str | None, benchmark: str | None, ci: bool, as_json: bool,
           as_csv: bool, html_path: Path | None, plots_dir: Path | None, database_url: str | None) -> None:
    """pass@k and coverage (pass@n) of stored runs; with --html, every analysis in one file.
    Runs whose problems are not all fully graded are labelled partial."""
    if ctx.invoked_subcommand is not None:
        ctx.obj = {"database_url": database_url}
        return
    from boundary.api import report as reporting
    from boundary.api.console import passk_table, stdout

    if as_json and as_csv:
        raise ConfigError("choose one of --json and --csv")
    with _session(database_url) as session:
        items = reporting.reports(session, run_ids, model, benchmark)
        if html_path or plots_dir:
            _write_files(session, [r.run_id for r in items], html_path, plots_dir)
        intervals = _intervals(session, items) if ci else {}
    if as_json:
        click.echo(json.dumps([{**r.to_dict(), **({"ci": intervals[r.run_id]} if ci else {})} for r in items], indent=2))
    elif as_csv:
        click.echo(reporting.to_csv(items), nl=False)
    elif not items:
        click.echo("no runs stored yet: start one with `boundary run`", err=True)
    elif not (html_path or plots_dir):
        stdout().print(passk_table(items, intervals))


def _intervals(session: Session, items: list) -> dict[int, dict[str, list[float]]]:
    from boundary.api.analysis.passk import with_confidence

    graded = [r.run_id for r in items if r.pass_at_k]
    out: dict[int, dict[str, list[float]]] = {r.run_id: {} for r in items}
    for p in with_confidence(session, graded):
        out[p.run_id][str(p.k)] = [p.ci_low, p.ci_high]
    return out


def _write_files(session: Session, run_ids: list[int], html_path: Path | None, plots_dir: Path | None) -> None:
    from boundary.api import html_report, plots
    from boundary.api.analysis.bundle import analyse

    if not run_ids:
        raise ConfigError("no runs to report on")
    analysis = analyse(session, run_ids)
    if html_path:
        html_report.write(analysis, html_path)
        click.echo(f"wrote {html_path}", err=True)
    if plots_dir:
        plots_dir.mkdir(parents=True, exist_ok=True)
        written = []
        for bench in analysis.benchmarks():
            runs = [r for r in analysis.runs if f"{r.benchmark} v{r.benchmark_version}" == bench]
            ids = {r.run_id for r in runs}
            fig = plots.passk_curves(bench, runs, [p for p in analysis.passk if p.run_id in ids])
            written += plots.save(fig, plots_dir / f"passk-{bench.replace(' ', '-')}")
        written += plots.save(plots.accuracy_histograms(analysis.runs, analysis.histograms), plots_dir / "accuracy")
        for i, sweep in enumerate(analysis.sweeps):
            written += plots.save(plots.temperature_envelope(sweep), plots_dir / f"temperature-{i + 1}")
        click.echo(f"wrote {len(written)} figures to {plots_dir}", err=True)


@report.command("solvable", epilog="\b\nExamples:\n  boundary report solvable --benchmark math500\n  boundary report solvable --second distilled --list")
@_runs_option
@click.option("--benchmark", help="Benchmark name (needed when runs of several benchmarks are stored).")
@click.option("--first", default="base", show_default=True, help="First role.")
@click.option("--second", default="rlvr", show_default=True, help="Second role.")
@click.option("--list", "show_list", is_flag=True, help="List the problem ids of each set.")
@click.option("--json", "as_json", is_flag=True)
@database_option
@click.pass_obj
def solvable(obj: dict, database_url: str | None, run_ids: tuple[int, ...], benchmark: str | None, first: str, second: str, show_list: bool, as_json: bool) -> None:
    """Problems solved by both roles, by one only, or by neither (Yue et al. Tables 4-5)."""
    from boundary.api.analysis.runs import run_infos
    from boundary.api.analysis.solvable import solvable_sets

    with _session(database_url or obj["database_url"]) as session:
        runs = run_infos(session, run_ids, benchmark)
        versions = {(r.benchmark, r.benchmark_version) for r in runs}
        if len(versions) != 1:
            raise ConfigError(f"the runs cover {len(versions)} benchmark versions: choose one with --benchmark or --run")
        sets = solvable_sets(session, [r.run_id for r in runs], first, second)

    def human() -> None:
        for label, keys in (("both", sets.both), (f"{first} only", sets.only_first), (f"{second} only", sets.only_second),
                            ("neither", sets.neither)):
            click.echo(f"{label:<16} {len(keys):>6}" + (f"  {', '.join(keys)}" if show_list else ""))
        click.echo(f"coverage: {first} {100 * sets.coverage(first):.1f}%, {second} {100 * sets.coverage(second):.1f}% "
                   f"of {sets.total} problems")

    _emit(as_json, sets.to_dict(), human)


@report.command("histogram", epilog="\b\nExample:\n  boundary report histogram --run 3 --run 4")
@_runs_option
@click.option("--json", "as_json", is_flag=True)
@database_option
@click.pass_obj
def histogram(obj: dict, database_url: str | None, run_ids: tuple[int, ...], as_json: bool) -> None:
    """Problems per accuracy bin (0.1 wide), and the share never solved, per run."""
    from boundary.api.analysis.histogram import histograms
    from boundary.api.analysis.runs import run_infos

    with _session(database_url or obj["database_url"]) as session:
        runs = run_infos(session, run_ids)
        items = histograms(session, [r.run_id for r in runs])
    labels = {r.run_id: r.label for r in runs}

    def human() -> None:
        click.echo(f"{'run':<32}" + "".join(f"{i / 10:>6.1f}" for i in range(10)) + "  never solved")
        for h in items:
            click.echo(f"{labels[h.run_id]:<32}" + "".join(f"{c:>6}" for c in h.counts) + f"  {100 * h.never_solved_share:.1f}%")

    _emit(as_json, [h.to_dict() for h in items], human)


@report.command("gap", epilog="\b\nExample:\n  boundary report gap --rl 4 --base 3 -k 256")
@click.option("--rl", "rl_run", type=int, required=True, help="The RL-trained model's run.")
@click.option("--base", "base_run", type=int, required=True, help="Its base model's run.")
@click.option("-k", type=int, required=True, help="k of the base model's pass@k.")
@click.option("--json", "as_json", is_flag=True)
@database_option
@click.pass_obj
def gap(obj: dict, database_url: str | None, rl_run: int, base_run: int, k: int, as_json: bool) -> None:
    """The sampling-efficiency gap: pass@1 of the RL run minus pass@k of the base run."""
    from boundary.api.analysis.gap import sampling_efficiency_gap

    with _session(database_url or obj["database_url"]) as session:
        result = sampling_efficiency_gap(session, rl_run, base_run, k)
    _emit(as_json, result.to_dict(), lambda: click.echo(
        f"dSE = {100 * result.rl_pass_at_1:.1f} (run {rl_run}, pass@1) - {100 * result.base_pass_at_k:.1f} "
        f"(run {base_run}, pass@{k}) = {100 * result.delta:+.1f} points"))


@report.command("temperature", epilog="\b\nExample:\n  boundary report temperature --benchmark aime24")
@_runs_option
@click.option("--benchmark", help="Only runs on this benchmark.")
@click.option("--json", "as_json", is_flag=True)
@database_option
@click.pass_obj
def temperature(obj: dict, database_url: str | None, run_ids: tuple[int, ...], benchmark: str | None, as_json: bool) -> None:
    """pass@k per temperature for runs that differ only in temperature, and the best per k."""
    from boundary.api.analysis.runs import run_infos
    from boundary.api.analysis.temperature import sweeps

    with _session(database_url or obj["database_url"]) as session:
        items = sweeps(session, run_infos(session, run_ids, benchmark))
    if not items and not as_json:
        raise ConfigError("no runs differ only in temperature: submit the same model at several temperatures")

    def human() -> None:
        for s in items:
            click.echo(f"{s.model} on {s.benchmark} ({s.template})")
            temps = sorted(s.by_temperature)
            click.echo(f"{'k':>6}" + "".join(f"{'T=' + format(t, 'g'):>9}" for t in temps) + "     best")
            for k, (value, t) in s.envelope().items():
                cells = "".join(f"{100 * s.by_temperature[x][k]:>9.1f}" for x in temps)
                click.echo(f"{k:>6}{cells}  {100 * value:>5.1f} at T={t:g}")

    _emit(as_json, [s.to_dict() for s in items], human)


@report.command("perplexity", epilog="\b\nExample:\n  boundary report perplexity --scorer qwen-base")
@click.option("--scorer", required=True, help="The scoring model's name (see `boundary score`).")
@_runs_option
@click.option("--json", "as_json", is_flag=True)
@database_option
@click.pass_obj
def perplexity(obj: dict, database_url: str | None, scorer: str, run_ids: tuple[int, ...], as_json: bool) -> None:
    """Distribution of the perplexity of each run's samples under the scoring model."""
    from sqlalchemy import select

    from boundary.api.analysis.perplexity import perplexities
    from boundary.api.db import schema

    with _session(database_url or obj["database_url"]) as session:
        scorer_id = session.scalars(select(schema.Model.id).where(schema.Model.name == scorer)).one_or_none()
        if scorer_id is None:
            raise ConfigError(f"no model named '{scorer}'")
        items = perplexities(session, scorer_id, run_ids or None)
    if not items and not as_json:
        raise ConfigError(f"no samples scored under '{scorer}' yet: run `boundary score --scorer {scorer} ...`")

    def human() -> None:
        click.echo(f"{'run':>4} {'model':<24} {'role':<10} {'samples':>8} {'mean':>8} {'q25':>8} {'median':>8} {'q75':>8}")
        for d in items:
            own = " (own)" if d.own else ""
            click.echo(f"{d.run_id:>4} {d.model + own:<24} {d.role:<10} {d.samples:>8} {d.mean:>8.3f} {d.q25:>8.3f} "
                       f"{d.median:>8.3f} {d.q75:>8.3f}")

    _emit(as_json, [d.to_dict() for d in items], human)


@click.command(epilog="\b\nExamples:\n  boundary audit --run 4 --per-run 25 --output review.jsonl\n  boundary audit --json")
@_runs_option
@click.option("--per-run", type=int, default=20, show_default=True, help="Correct samples to draw per run for review.")
@click.option("--seed", type=int, default=0, show_default=True, help="The same seed picks the same samples.")
@click.option("-k", type=int, help="k of the guessing baseline (default: each run's largest).")
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), help="Write the review set here (JSONL).")
@click.option("--json", "as_json", is_flag=True)
@database_option
def audit(run_ids: tuple[int, ...], per_run: int, seed: int, k: int | None, output: Path | None, as_json: bool,
          database_url: str | None) -> None:
    """The lucky-guess audit: a reproducible random set of correct samples per run to read, and
    per problem the pass@k of guessing from the run's own answer distribution."""
    from dataclasses import asdict

    from boundary.api.analysis.audit import guess_baseline, review_set
    from boundary.api.analysis.runs import run_infos
    from boundary.workers.verify_file import write_jsonl_atomic

    if per_run < 0:
        raise ConfigError(f"--per-run must be >= 0, got {per_run}")
    with _session(database_url) as session:
        runs = run_infos(session, run_ids)
        review = review_set(session, [r.run_id for r in runs], per_run, seed)
        baselines = {r.run_id: guess_baseline(session, r.run_id, k) for r in runs}
    if output:
        write_jsonl_atomic(output, [asdict(item) for item in review])
    data = {"review": [asdict(i) for i in review] if not output else str(output),
            "baseline": {str(rid): {"k": kk, "problems": [g.to_dict() for g in rows]} for rid, (kk, rows) in baselines.items()}}

    def human() -> None:
        for r in runs:
            kk, rows = baselines[r.run_id]
            flagged = [g.problem for g in rows if g.indistinguishable]
            click.echo(f"run {r.run_id} {r.label}: pass@{kk} no better than guessing on {len(flagged)} of {len(rows)} problems"
                       + (f": {', '.join(flagged[:20])}" if flagged else ""))
        click.echo(f"review set: {len(review)} correct samples" + (f" written to {output}" if output else " (use --output FILE)"))

    _emit(as_json, data, human)


@click.command(epilog="\b\nExamples:\n  boundary export --run 3 --output run3.parquet\n  boundary export --output all.csv")
@_runs_option
@click.option("--output", required=True, type=click.Path(dir_okay=False, path_type=Path), help="File to write (.csv, .jsonl or .parquet).")
@click.option("--format", "fmt", type=click.Choice(["csv", "jsonl", "parquet"]), help="Default: from the file name.")
@database_option
def export(run_ids: tuple[int, ...], output: Path, fmt: str | None, database_url: str | None) -> None:
    """Samples with their verdicts, as CSV, JSONL or Parquet (default: every run)."""
    from boundary.api import export as exporting
    from boundary.api.analysis.runs import run_infos

    with _session(database_url) as session:
        ids = [r.run_id for r in run_infos(session, run_ids)]
        count = exporting.export(session, ids, output, fmt)
    click.echo(f"wrote {count} samples of {len(ids)} run(s) to {output}", err=True)
