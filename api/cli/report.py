"""`boundary report` (pass@k tables, analyses, the HTML report and figures), `boundary audit`
and `boundary export`: each command parses its options, makes one library call (analysis/) and
prints what render/ makes of the result."""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from boundary.api.cli.options import Group, database_option
from boundary.api.config import Settings
from boundary.api.errors import ConfigError

if TYPE_CHECKING:
    from boundary.api.db import Database

EXAMPLES = """\b
Examples:
  boundary report
  boundary report --benchmark gsm8k --ci --json
  boundary report --run 3 --csv > run3.csv
  boundary report --html report.html --plots figures/
  boundary report solvable --benchmark math500
  boundary report gap --rl 4 --base 3 -k 256"""


def _database(database_url: str | None) -> AbstractContextManager[Database]:
    from boundary.api.db import Database

    return Database.opened(Settings.build(database_url, None, None).database_url)


def _emit(as_json: bool, data: Any, human: Callable[[], str]) -> None:
    if as_json:
        click.echo(json.dumps(data, indent=2))
    else:
        click.echo(human(), nl=False)


def _runs_option(f: Callable) -> Callable:
    return click.option("--run", "run_ids", type=int, multiple=True, help="Only this run id (repeatable).")(f)


@click.group(cls=Group, invoke_without_command=True, epilog=EXAMPLES)
@_runs_option
@click.option("--model", help="Only runs of this model name.")
@click.option("--benchmark", help="Only runs on this benchmark name.")
@click.option("--ci", is_flag=True, help="Add 95% bootstrap intervals over problems.")
@click.option("--json", "as_json", is_flag=True, help="JSON: one object per run.")
@click.option("--csv", "as_csv", is_flag=True, help="CSV, one row per (run, k).")
@click.option("--html", "html_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the full report as one HTML file.")
@click.option("--plots", "plots_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Write the figures (PNG and SVG) here.")
@database_option
@click.pass_context
def report(ctx: click.Context, run_ids: tuple[int, ...], model: str | None, benchmark: str | None, ci: bool,
           as_json: bool, as_csv: bool, html_path: Path | None, plots_dir: Path | None,
           database_url: str | None) -> None:
    """pass@k and coverage (pass@n) of stored runs; with --html, every analysis in one file.
    Runs whose problems are not all fully graded are labelled partial."""
    if ctx.invoked_subcommand is not None:
        ctx.obj = {"database_url": database_url}
        return
    from boundary.api.analysis.bundle import load_analysis
    from boundary.api.analysis.report import load_reports
    from boundary.api.render import html, plots
    from boundary.api.render.console import passk_table, stdout
    from boundary.api.render.export import to_csv

    if as_json and as_csv:
        raise ConfigError("choose one of --json and --csv")
    with _database(database_url) as db:
        found = load_reports(db, run_ids, model=model, benchmark=benchmark, ci=ci)
        analysis = load_analysis(db, [r.run_id for r in found.reports]) if html_path or plots_dir else None
    if html_path:
        html.write(analysis, html_path)
        click.echo(f"wrote {html_path}", err=True)
    if plots_dir:
        click.echo(f"wrote {len(plots.write_figures(analysis, plots_dir))} figures to {plots_dir}", err=True)
    if as_json:
        click.echo(json.dumps(found.to_dicts(), indent=2))
    elif as_csv:
        click.echo(to_csv(found.reports), nl=False)
    elif not found.reports:
        click.echo("no runs stored yet: start one with `boundary run`", err=True)
    elif not (html_path or plots_dir):
        stdout().print(passk_table(found.reports, found.intervals))


@report.command("solvable", epilog="\b\nExamples:\n  boundary report solvable --benchmark math500\n"
                "  boundary report solvable --second distilled --list")
@_runs_option
@click.option("--benchmark", help="Benchmark name (needed when runs of several benchmarks are stored).")
@click.option("--first", default="base", show_default=True, help="First role.")
@click.option("--second", default="rlvr", show_default=True, help="Second role.")
@click.option("--list", "show_list", is_flag=True, help="List the problem ids of each set.")
@click.option("--json", "as_json", is_flag=True)
@database_option
@click.pass_obj
def solvable(obj: dict, database_url: str | None, run_ids: tuple[int, ...], benchmark: str | None, first: str,
             second: str, show_list: bool, as_json: bool) -> None:
    """Problems solved by both roles, by one only, or by neither (Yue et al. Tables 4-5)."""
    from boundary.api.analysis.solvable import load_solvable
    from boundary.api.render import text

    with _database(database_url or obj["database_url"]) as db:
        sets = load_solvable(db, run_ids, benchmark, first, second)
    _emit(as_json, sets.to_dict(), lambda: text.solvable(sets, show_list))


@report.command("histogram", epilog="\b\nExample:\n  boundary report histogram --run 3 --run 4")
@_runs_option
@click.option("--json", "as_json", is_flag=True)
@database_option
@click.pass_obj
def histogram(obj: dict, database_url: str | None, run_ids: tuple[int, ...], as_json: bool) -> None:
    """Problems per accuracy bin (0.1 wide), and the share never solved, per run."""
    from boundary.api.analysis.histogram import load_histograms
    from boundary.api.render import text

    with _database(database_url or obj["database_url"]) as db:
        runs, items = load_histograms(db, run_ids)
    _emit(as_json, [h.to_dict() for h in items], lambda: text.histograms(runs, items))


@report.command("gap", epilog="\b\nExample:\n  boundary report gap --rl 4 --base 3 -k 256")
@click.option("--rl", "rl_run", type=int, required=True, help="The RL-trained model's run.")
@click.option("--base", "base_run", type=int, required=True, help="Its base model's run.")
@click.option("-k", type=int, required=True, help="k of the base model's pass@k.")
@click.option("--json", "as_json", is_flag=True)
@database_option
@click.pass_obj
def gap(obj: dict, database_url: str | None, rl_run: int, base_run: int, k: int, as_json: bool) -> None:
    """The sampling-efficiency gap: pass@1 of the RL run minus pass@k of the base run."""
    from boundary.api.analysis.gap import load_gap
    from boundary.api.render import text

    with _database(database_url or obj["database_url"]) as db:
        result = load_gap(db, rl_run, base_run, k)
    _emit(as_json, result.to_dict(), lambda: text.gap(result))


@report.command("temperature", epilog="\b\nExample:\n  boundary report temperature --benchmark aime24")
@_runs_option
@click.option("--benchmark", help="Only runs on this benchmark.")
@click.option("--json", "as_json", is_flag=True)
@database_option
@click.pass_obj
def temperature(obj: dict, database_url: str | None, run_ids: tuple[int, ...], benchmark: str | None,
                as_json: bool) -> None:
    """pass@k per temperature for runs that differ only in temperature, and the best per k."""
    from boundary.api.analysis.temperature import load_sweeps
    from boundary.api.render import text

    with _database(database_url or obj["database_url"]) as db:
        items = load_sweeps(db, run_ids, benchmark, required=not as_json)
    _emit(as_json, [s.to_dict() for s in items], lambda: text.sweeps(items))


@report.command("perplexity", epilog="\b\nExample:\n  boundary report perplexity --scorer qwen-base")
@click.option("--scorer", required=True, help="The scoring model's name (see `boundary score`).")
@_runs_option
@click.option("--json", "as_json", is_flag=True)
@database_option
@click.pass_obj
def perplexity(obj: dict, database_url: str | None, scorer: str, run_ids: tuple[int, ...], as_json: bool) -> None:
    """Distribution of the perplexity of each run's samples under the scoring model."""
    from boundary.api.analysis.perplexity import load_perplexities
    from boundary.api.render import text

    with _database(database_url or obj["database_url"]) as db:
        items = load_perplexities(db, scorer, run_ids, required=not as_json)
    _emit(as_json, [d.to_dict() for d in items], lambda: text.perplexities(items))


@click.command(epilog="\b\nExamples:\n  boundary audit --run 4 --per-run 25 --output review.jsonl\n"
               "  boundary audit --json")
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
    from boundary.api.analysis.audit import load_audit
    from boundary.api.render import text
    from boundary.workers.verify_file import write_jsonl_atomic

    if per_run < 0:
        raise ConfigError(f"--per-run must be >= 0, got {per_run}")
    with _database(database_url) as db:
        result = load_audit(db, run_ids, per_run, seed, k)
    if output:
        write_jsonl_atomic(output, result.review_records())
    _emit(as_json, result.to_dict(output), lambda: text.audit(result, output))


@click.command(epilog="\b\nExamples:\n  boundary export --run 3 --output run3.parquet\n"
               "  boundary export --output all.csv")
@_runs_option
@click.option("--output", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="File to write (.csv, .jsonl or .parquet).")
@click.option("--format", "fmt", type=click.Choice(["csv", "jsonl", "parquet"]), help="Default: from the file name.")
@database_option
def export(run_ids: tuple[int, ...], output: Path, fmt: str | None, database_url: str | None) -> None:
    """Samples with their verdicts, as CSV, JSONL or Parquet (default: every run)."""
    from boundary.api.analysis.samples import load_samples
    from boundary.api.render.export import write

    with _database(database_url) as db:
        ids, rows = load_samples(db, run_ids)
        count = write(rows, output, fmt)
    click.echo(f"wrote {count} samples of {len(ids)} run(s) to {output}", err=True)
