"""The fleet's commands: `submit`, `resume`, `status`, and `worker sample|grade|sandbox`."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import click

from boundary.api import defaults
from boundary.api.cli.options import (
    Group,
    broker_option,
    cache_dir_option,
    data_dir_option,
    database_option,
    parse_engine_options,
    samplers_options,
    sandbox_options,
    worker_options,
    worker_settings,
)
from boundary.api.config import Settings
from boundary.api.errors import ConfigError
from boundary.api.queues import sampled_model
from boundary.api.samplers import parse_sampler_options

SUBMIT_EXAMPLES = """\b
Examples:
  boundary submit experiment.yaml
  boundary submit --name roles --model smollm2-135m --role base --model ./rl-ckpt --role rlvr \\
      --benchmark math500 --temperature 0.6 --temperature 1.0 -k 64
  boundary submit --model smollm2-135m --benchmark arith -k 8 --max-tokens 128 --sampler plain \\
      --sampler power-mcmc --sampler power-smc -S block_tokens=32 -S mcmc_steps=2 -S particles=8"""


@click.command(epilog=SUBMIT_EXAMPLES)
@click.argument("experiment_file", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--name", help="Experiment name (default: the file's name, or one made from the flags).")
@click.option("--model", "models", multiple=True, help="A model (alias, folder, hub id); repeatable.")
@click.option("--role", "roles", multiple=True, help="The role of each --model, in order.")
@click.option("--benchmark", "benchmark_names", multiple=True, help="A benchmark; repeatable.")
@click.option("--temperature", "temperatures", type=float, multiple=True,
              help="Repeatable: one plain run per temperature.")
@samplers_options
@click.option("-k", "--samples", "n", type=int, help=f"Samples per problem (default {defaults.N_SAMPLES}).")
@click.option("--top-p", type=float)
@click.option("--max-tokens", type=int)
@click.option("--seed", type=int)
@click.option("--template")
@click.option("--engine", help="vllm (default), openai, hf or echo.")
@click.option("--batch-size", type=int, help=f"Samples per queue message (default {defaults.BATCH_SAMPLES}).")
@click.option("--json", "as_json", is_flag=True, help="Print what was submitted as JSON.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bars (embedded mode).")
@broker_option(required=False)
@database_option
@data_dir_option
@cache_dir_option
def submit(experiment_file: Path | None, **opts: Any) -> None:
    """Register an experiment (models with roles x benchmarks x samplers x temperatures) and queue its
    sampling in batches; grading is queued as samples land. Submitting the same experiment
    again reuses it and queues only what is missing.

    Without a broker, the experiment runs here, in this process.
    """
    from boundary.api import experiments

    flags = [opts["models"], opts["roles"], opts["benchmark_names"], opts["temperatures"], opts["samplers"],
             opts["sampler_option_pairs"]]
    if experiment_file is not None and any(flags):
        raise ConfigError("give an experiment file or --model/--benchmark flags, not both")
    if experiment_file is not None:
        experiment = experiments.load_file(experiment_file)
        if opts["name"]:
            experiment = experiment.renamed(opts["name"])
    else:
        common = {k: opts[k] for k in ("n", "top_p", "max_tokens", "seed", "template", "engine", "batch_size")}
        experiment = experiments.from_flags(opts["name"], opts["models"], opts["roles"], opts["benchmark_names"],
                                            opts["temperatures"], opts["samplers"],
                                            parse_sampler_options(opts["sampler_option_pairs"]), **common)
    settings = Settings.build(opts["database_url"], opts["data_dir"], opts["cache_dir"])
    if not opts["broker_url"]:
        _submit_here(experiment, settings, opts)
        return
    from boundary.workers.submit import submit as submit_experiment

    done = submit_experiment(settings.database_url, opts["broker_url"], experiment, settings.data_dir)
    if opts["as_json"]:
        click.echo(json.dumps({"experiment": done.experiment, "runs": done.run_ids, "queues": done.queues()}, indent=2))
        return
    click.echo(f"experiment '{done.experiment}': {len(done.run_ids)} runs ({', '.join(map(str, done.run_ids))})")
    for queue, count in sorted(done.queues().items()):
        click.echo(f"  {count} batches on {queue}")
    if not done.queued:
        click.echo("  nothing missing: every run is complete")
    for model in sorted(m for m in map(sampled_model, done.queues()) if m is not None):
        click.echo(f"start a worker: boundary worker sample --model {model}")


def _submit_here(experiment, settings: Settings, opts: dict[str, Any]) -> None:
    from boundary.api.db import Database
    from boundary.api.render.console import PhaseBars, passk_table, stdout
    from boundary.workers.embedded import run_experiment_here
    from boundary.workers.engines import open_engine
    from boundary.workers.graders import open_grader

    with (
        Database.opened(settings.database_url) as db,
        PhaseBars(enabled=not opts["quiet"] and not opts["as_json"]) as bars,
    ):
        reports = run_experiment_here(
            db, experiment, settings.data_dir,
            open_engine=lambda name, model, options, tokens=False: open_engine(name, model, options,
                                                                               settings.cache_dir, tokens=tokens),
            open_grader=open_grader,
            progress=bars,
        )
    if opts["as_json"]:
        click.echo(json.dumps([r.to_dict() for r in reports], indent=2))
    else:
        stdout().print(passk_table(reports))


@click.command(epilog="\b\nExamples:\n  boundary resume roles\n  boundary resume 12")
@click.argument("target")
@click.option("--batch-size", type=click.IntRange(min=1),
              help="Samples per message. Default: the batch_size of the experiment each run was submitted with "
                   f"(the newest one holding it), or {defaults.BATCH_SAMPLES} for a run in no experiment.")
@broker_option(required=True)
@database_option
def resume(target: str, batch_size: int | None, broker_url: str, database_url: str | None) -> None:
    """Queue again exactly the work a run (by id) or an experiment (by name) is missing, as
    the database says: after a lost queue, a dead worker, or failed batches."""
    from boundary.workers.submit import resume as resume_runs

    done = resume_runs(Settings.build(database_url, None, None).database_url, broker_url, target, batch_size)
    click.echo(f"queued {done.count('sample')} sampling and {done.count('grade')} grading batches "
               f"for {len(done.run_ids)} run(s)")


@click.command(epilog="\b\nExamples:\n  boundary status\n  boundary status roles --once\n  boundary status 12 --json")
@click.argument("targets", nargs=-1)
@click.option("--json", "as_json", is_flag=True, help="Print once, as JSON.")
@click.option("--once", is_flag=True, help="Print once instead of a live display.")
@click.option("--interval", type=float, default=2.0, show_default=True, help="Seconds between refreshes.")
@broker_option(required=False, note="With one, the table also shows each queue's depth and its workers, current and "
               "desired, as `boundary autoscale` decided them.")
@database_option
def status(targets: tuple[str, ...], as_json: bool, once: bool, interval: float, broker_url: str | None,
           database_url: str | None) -> None:
    """Progress of runs (default: all): sampled, graded and failed, samples/s and ETA, live
    until every run is complete; their batches per queue, waiting, held by live workers and
    held by dead ones (from the database); with a broker, the queues and their workers too."""
    from boundary.api import status as progress
    from boundary.api.db import Database
    from boundary.api.render.console import batches_table, status_table, stdout
    from boundary.api.runs import find_runs, target_runs

    with Database.opened(Settings.build(database_url, None, None).database_url) as db:
        with db.session() as session:
            run_ids = [rid for t in targets for rid in target_runs(session, t)] if targets else find_runs(session)

        def read():
            with db.session() as session:
                return progress.statuses(session, run_ids)

        if as_json:
            click.echo(json.dumps([s.to_dict() for s in read()], indent=2))
            return
        queues = _queues_table(broker_url)

        def render(items):
            return _with_queues([status_table(items), batches_table(items)], queues())

        if once:
            stdout().print(render(read()))
            return
        from rich.live import Live

        with Live(render(read()), console=stdout(), refresh_per_second=4) as live:
            while True:
                items = read()
                live.update(render(items))
                if all(s.complete for s in items):
                    break
                time.sleep(interval)


def _queues_table(broker_url: str | None):
    """A function returning the queues' table (None without a broker, or with no queues); a
    broker that does not answer gives a table that says so."""
    if not broker_url:
        return lambda: None
    from boundary.api.render.console import queues_table
    from boundary.workers.autoscale.state import queue_reader

    read = queue_reader(broker_url)

    def table():
        views, trouble = read()
        if trouble:
            return queues_table([], caption=trouble)
        return queues_table(views) if views else None

    return table


def _with_queues(tables, queues):
    from rich.console import Group as Stack

    return Stack(*[t for t in [*tables, queues] if t is not None])


@click.group(cls=Group)
def worker() -> None:
    """Start a worker: `sample` serves one model from its queue, `grade` checks math
    answers, `sandbox` runs code answers.

    \b
    Example:
      boundary worker sample --model smol-base
      boundary worker grade --concurrency 4
    """


@worker.command("sample", epilog="\b\nExamples:\n  boundary worker sample --model smol-base\n"
                                 "  boundary worker sample --model qwen-7b-grpo --weights /models/grpo-400"
                                 " -o tensor_parallel_size=2")
@click.option("--model", "model_name", required=True, help="The model's name, as in the experiment.")
@click.option("--weights", envvar="BOUNDARY_WEIGHTS", show_envvar=True,
              help="Load the weights from this folder or hub id instead of the stored source.")
@click.option("--engine", "engine_name", default=defaults.ENGINE, show_default=True, help="vllm, openai, hf or echo.")
@click.option("-o", "--engine-option", "engine_options", multiple=True, metavar="KEY=VALUE")
@click.option("--wait", "wait_s", type=float, default=24 * 3600, show_default=True,
              help="Seconds to wait for an experiment that names the model, when started before one is submitted.")
@cache_dir_option
@worker_options
def worker_sample(model_name: str, weights: str | None, engine_name: str, engine_options: tuple[str, ...],
                  wait_s: float, cache_dir: str | None, **opts: Any) -> None:
    """Serve one model: load it once, then sample the batches of its queue (sample.MODEL)."""
    from boundary.workers.startup import start_model_worker

    start_model_worker("sample", worker_settings(opts), model_name, weights, engine_name,
                       parse_engine_options(engine_options), Settings.build(None, None, cache_dir).cache_dir, wait_s)


def _pool_options(what: str):
    def decorate(f):
        f = click.option("--autoscale", "pool_autoscale", metavar="MAX,MIN",
                         help="Celery's own autoscaler: grow the pool up to MAX processes while messages wait, shrink "
                              "it to MIN when idle (instead of a fixed --concurrency).")(f)
        return click.option("--concurrency", type=int, default=os.cpu_count() or 1, show_default=True,
                            help=f"{what} processes.")(f)

    return decorate


def _concurrency_given() -> bool:
    source = click.get_current_context().get_parameter_source("concurrency")
    return source != click.core.ParameterSource.DEFAULT


@worker.command("grade", epilog="\b\nExamples:\n  boundary worker grade --concurrency 4\n"
                                "  boundary worker grade --autoscale 8,2")
@_pool_options("Grading")
@worker_options
def worker_grade(concurrency: int, pool_autoscale: str | None, **opts: Any) -> None:
    """Grade math answers from the `grade` queue."""
    from boundary.workers.startup import start_pool_worker

    start_pool_worker("grade", worker_settings(opts), concurrency, pool_autoscale, _concurrency_given())


@worker.command("sandbox", epilog="\b\nExamples:\n  boundary worker sandbox --concurrency 2\n"
                                  "  boundary worker sandbox --autoscale 4,1")
@_pool_options("Sandboxed")
@sandbox_options
@worker_options
def worker_sandbox(concurrency: int, pool_autoscale: str | None, sandbox: str, unsafe_no_sandbox: bool,
                   **opts: Any) -> None:
    """Run code answers against their tests, in the sandbox, from the `sandbox` queue.

    Each worker process keeps one warm sandbox; the worker refuses to start when none can.
    """
    from boundary.workers.startup import start_pool_worker

    start_pool_worker("sandbox", worker_settings(opts), concurrency, pool_autoscale, _concurrency_given(),
                      sandbox=sandbox, unsafe_no_sandbox=unsafe_no_sandbox)
