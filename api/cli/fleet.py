"""The fleet's commands: `submit`, `resume`, `status`, and `worker sample|grade|sandbox`."""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from typing import Any

import click

from boundary.api import defaults
from boundary.api.cli.options import (
    Group, cache_dir_option, data_dir_option, database_option, parse_engine_options, sandbox_options,
)
from boundary.api.config import Settings
from boundary.api.errors import ConfigError


def broker_option(required: bool, note: str | None = None):
    def decorate(f):
        return click.option(
            "--broker-url",
            envvar="BOUNDARY_BROKER_URL",
            show_envvar=True,
            required=required,
            help="Redis URL of the queue, e.g. redis://localhost:6379/0."
            + (f" {note}" if note else "" if required else " Without one, `submit` runs the experiment in this process."),
        )(f)

    return decorate


SUBMIT_EXAMPLES = """\b
Examples:
  boundary submit experiment.yaml
  boundary submit --name roles --model smollm2-135m --role base --model ./rl-ckpt --role rlvr \\
      --benchmark math500 --temperature 0.6 --temperature 1.0 -k 64"""


@click.command(epilog=SUBMIT_EXAMPLES)
@click.argument("experiment_file", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--name", help="Experiment name (default: the file's name, or one made from the flags).")
@click.option("--model", "models", multiple=True, help="A model (alias, folder, hub id); repeatable.")
@click.option("--role", "roles", multiple=True, help="The role of each --model, in order.")
@click.option("--benchmark", "benchmark_names", multiple=True, help="A benchmark; repeatable.")
@click.option("--temperature", "temperatures", type=float, multiple=True, help="Repeatable: one run per temperature.")
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
    """Register an experiment (models with roles x benchmarks x temperatures) and queue its
    sampling in batches; grading is queued as samples land. Submitting the same experiment
    again reuses it and queues only what is missing.

    Without a broker, the experiment runs here, in this process.
    """
    from boundary.api import experiments
    from boundary.api.db import Database
    from boundary.workers import fleet

    flags = [opts["models"], opts["roles"], opts["benchmark_names"], opts["temperatures"]]
    if experiment_file is not None and any(flags):
        raise ConfigError("give an experiment file or --model/--benchmark flags, not both")
    if experiment_file is not None:
        experiment = experiments.load_file(experiment_file)
        if opts["name"]:
            experiment = experiment.renamed(opts["name"])
    else:
        common = {k: opts[k] for k in ("n", "top_p", "max_tokens", "seed", "template", "engine", "batch_size")}
        experiment = experiments.from_flags(opts["name"], opts["models"], opts["roles"], opts["benchmark_names"],
                                            opts["temperatures"], **common)
    settings = Settings.build(opts["database_url"], opts["data_dir"], opts["cache_dir"])
    if not opts["broker_url"]:
        _submit_here(experiment, settings, opts)
        return
    experiments.resolve_all(experiment, settings.data_dir)  # bad input fails before any connection
    from boundary.workers.queue import check_broker

    check_broker(opts["broker_url"])
    db = Database.connect(settings.database_url)
    try:
        done = fleet.submit(db, opts["broker_url"], experiment, settings.data_dir)
    finally:
        db.dispose()
    if opts["as_json"]:
        click.echo(json.dumps({"experiment": done.experiment, "runs": done.run_ids, "queues": done.queues()}, indent=2))
        return
    click.echo(f"experiment '{done.experiment}': {len(done.run_ids)} runs ({', '.join(map(str, done.run_ids))})")
    for queue, count in sorted(done.queues().items()):
        click.echo(f"  {count} batches on {queue}")
    if not done.queued:
        click.echo("  nothing missing: every run is complete")
    for queue in sorted(q for q in done.queues() if q.startswith("sample.")):
        click.echo(f"start a worker: boundary worker sample --model {queue.removeprefix('sample.')}")


def _submit_here(experiment, settings: Settings, opts: dict[str, Any]) -> None:
    from boundary.api.console import PhaseBars, passk_table, stdout
    from boundary.api.db import Database
    from boundary.workers import fleet
    from boundary.workers.engines import open_engine
    from boundary.workers.graders import open_grader

    db = Database.connect(settings.database_url)
    try:
        with PhaseBars(enabled=not opts["quiet"] and not opts["as_json"]) as bars:
            reports = fleet.run_experiment_here(
                db, experiment, settings.data_dir,
                open_engine=lambda name, model, options: open_engine(name, model, options, settings.cache_dir),
                open_grader=open_grader,
                progress=bars,
            )
    finally:
        db.dispose()
    if opts["as_json"]:
        click.echo(json.dumps([r.to_dict() for r in reports], indent=2))
    else:
        stdout().print(passk_table(reports))


@click.command(epilog="\b\nExamples:\n  boundary resume roles\n  boundary resume 12")
@click.argument("target")
@click.option("--batch-size", type=int, default=defaults.BATCH_SAMPLES, show_default=True, help="Samples per message.")
@broker_option(required=True)
@database_option
def resume(target: str, batch_size: int, broker_url: str, database_url: str | None) -> None:
    """Queue again exactly the work a run (by id) or an experiment (by name) is missing, as
    the database says: after a lost queue, a dead worker, or failed batches."""
    from boundary.api.db import Database
    from boundary.workers import fleet

    db = Database.connect(Settings.build(database_url, None, None).database_url)
    try:
        run_ids = fleet.target_runs(db, target)
        queued = fleet.resume(db, broker_url, run_ids, batch_size)
    finally:
        db.dispose()
    kinds = {k: sum(q.kind == k for q in queued) for k in ("sample", "grade")}
    click.echo(f"queued {kinds['sample']} sampling and {kinds['grade']} grading batches for {len(run_ids)} run(s)")


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
    until every run is complete; with a broker, the queues and their workers too."""
    from boundary.api import status as progress
    from boundary.api.console import status_table, stdout
    from boundary.api.db import Database
    from boundary.api.report import find_runs
    from boundary.workers import fleet

    db = Database.connect(Settings.build(database_url, None, None).database_url)
    try:
        if targets:
            run_ids = [rid for t in targets for rid in fleet.target_runs(db, t)]
        else:
            with db.session() as session:
                run_ids = find_runs(session)

        def read():
            with db.session() as session:
                return progress.statuses(session, run_ids)

        if as_json:
            click.echo(json.dumps([s.to_dict() for s in read()], indent=2))
            return
        queues = _queue_reader(broker_url)

        def render(items):
            return _with_queues(status_table(items), queues())

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
    finally:
        db.dispose()


def _queue_reader(broker_url: str | None):
    """A function returning the queues' table (None without a broker); a broker that does not
    answer gives a table that says so."""
    if not broker_url:
        return lambda: None
    import redis

    from boundary.api.console import queues_table
    from boundary.api.db.session import redact_url
    from boundary.workers.autoscale.depth import connect
    from boundary.workers.autoscale.state import queue_views

    client = connect(broker_url, timeout_s=2.0)

    def read():
        try:
            views = queue_views(client)
        except redis.RedisError as exc:
            return queues_table([], caption=f"broker {redact_url(broker_url)} does not answer: {str(exc).splitlines()[0]}")
        return queues_table(views) if views else None

    return read


def _with_queues(runs, queues):
    from rich.console import Group as Stack

    return runs if queues is None else Stack(runs, queues)


@click.group(cls=Group)
def worker() -> None:
    """Start a worker: `sample` serves one model from its queue, `grade` checks math
    answers, `sandbox` runs code answers.

    \b
    Example:
      boundary worker sample --model smol-base
      boundary worker grade --concurrency 4
    """


def _common_worker_options(f):
    f = click.option("--max-attempts", type=int, default=defaults.BATCH_MAX_ATTEMPTS, show_default=True,
                     help="Deliveries of a batch before it is marked failed.")(f)
    f = click.option("--visibility-timeout", type=float, default=defaults.VISIBILITY_TIMEOUT_S, show_default=True,
                     help="Seconds before an unacknowledged message goes to another worker; above the longest batch.")(f)
    f = click.option("--hostname", help="Worker name (default: kind-queue@host).")(f)
    f = click.option("--loglevel", default="INFO", show_default=True)(f)
    f = database_option(f)
    f = broker_option(required=True)(f)
    return f


@worker.command("sample", epilog="\b\nExamples:\n  boundary worker sample --model smol-base\n  boundary worker sample --model qwen-7b-grpo --weights /models/grpo-400 -o tensor_parallel_size=2")
@click.option("--model", "model_name", required=True, help="The model's name, as in the experiment.")
@click.option("--weights", envvar="BOUNDARY_WEIGHTS", show_envvar=True, help="Load the weights from this folder or hub id instead of the stored source.")
@click.option("--engine", "engine_name", default=defaults.ENGINE, show_default=True, help="vllm, openai, hf or echo.")
@click.option("-o", "--engine-option", "engine_options", multiple=True, metavar="KEY=VALUE")
@click.option("--wait", "wait_s", type=float, default=24 * 3600, show_default=True,
              help="Seconds to wait for an experiment that names the model, when started before one is submitted.")
@cache_dir_option
@_common_worker_options
def worker_sample(model_name: str, weights: str | None, engine_name: str, engine_options: tuple[str, ...], wait_s: float, cache_dir: str | None, **opts: Any) -> None:
    """Serve one model: load it once, then sample the batches of its queue (sample.MODEL)."""
    from boundary.api.batches import sample_queue
    from boundary.api.db import Database
    from boundary.workers import fleet, runtime
    from boundary.workers.engines import check_engine_name, open_engine
    from boundary.workers.queue import check_broker

    check_engine_name(engine_name)
    settings = Settings.build(opts["database_url"], None, cache_dir)
    check_broker(opts["broker_url"])
    db = Database.connect(settings.database_url, auto_migrate=False)
    try:
        spec = fleet.worker_model(db, model_name, weights, wait_s=wait_s)
    finally:
        db.dispose()
    options = parse_engine_options(engine_options)
    runtime.configure(runtime.WorkerConfig(
        database_url=settings.database_url, model_name=model_name, engine_name=engine_name,
        open_engine=lambda: open_engine(engine_name, spec, options, settings.cache_dir), max_attempts=opts["max_attempts"],
    ))
    runtime.engine()  # load the model now: a worker that cannot load it should not take messages
    _start(opts, settings.database_url, [sample_queue(model_name)], pool="solo", concurrency=1, kind="sample")


def _pool_options(what: str):
    def decorate(f):
        f = click.option("--autoscale", "pool_autoscale", metavar="MAX,MIN",
                         help="Celery's own autoscaler: grow the pool up to MAX processes while messages wait, shrink "
                              "it to MIN when idle (instead of a fixed --concurrency).")(f)
        return click.option("--concurrency", type=int, default=os.cpu_count() or 1, show_default=True,
                            help=f"{what} processes.")(f)

    return decorate


@worker.command("grade", epilog="\b\nExamples:\n  boundary worker grade --concurrency 4\n"
                                "  boundary worker grade --autoscale 8,2")
@_pool_options("Grading")
@_common_worker_options
def worker_grade(concurrency: int, pool_autoscale: str | None, **opts: Any) -> None:
    """Grade math answers from the `grade` queue."""
    _grading_worker("grade", concurrency, pool_autoscale, opts)


@worker.command("sandbox", epilog="\b\nExamples:\n  boundary worker sandbox --concurrency 2\n"
                                  "  boundary worker sandbox --autoscale 4,1")
@_pool_options("Sandboxed")
@sandbox_options
@_common_worker_options
def worker_sandbox(concurrency: int, pool_autoscale: str | None, sandbox: str, unsafe_no_sandbox: bool, **opts: Any) -> None:
    """Run code answers against their tests, in the sandbox, from the `sandbox` queue.

    Each worker process keeps one warm sandbox; the worker refuses to start when none can.
    """
    _grading_worker("sandbox", concurrency, pool_autoscale, opts, sandbox=(sandbox, unsafe_no_sandbox))


def _grading_worker(queue: str, concurrency: int, pool_autoscale: str | None, opts: dict[str, Any],
                    sandbox: tuple[str, bool] = (defaults.SANDBOX, False)) -> None:
    from boundary.api.autoscale import parse_pool_autoscale
    from boundary.api.db import Database
    from boundary.workers import runtime
    from boundary.workers.graders import grader_opener
    from boundary.workers.queue import check_broker

    if concurrency < 1:
        raise ConfigError(f"--concurrency must be >= 1, got {concurrency}")
    pool = parse_pool_autoscale(pool_autoscale) if pool_autoscale else None
    if pool and click.get_current_context().get_parameter_source("concurrency") != click.core.ParameterSource.DEFAULT:
        raise ConfigError("give --concurrency or --autoscale, not both")
    database_url = Settings.build(opts["database_url"], None, None).database_url
    check_broker(opts["broker_url"])
    Database.connect(database_url, auto_migrate=False).dispose()
    if queue == "sandbox":
        from boundary.workers.sandbox import open_sandbox

        open_sandbox(sandbox[0], unsafe_no_sandbox=sandbox[1]).close()  # refuse now, not on every batch
    runtime.configure(runtime.WorkerConfig(database_url=database_url, open_grader=grader_opener(*sandbox),
                                           max_attempts=opts["max_attempts"]))
    _start(opts, database_url, [queue], pool="prefork", concurrency=pool[0] if pool else concurrency, kind=queue,
           extra=["--autoscale", f"{pool[0]},{pool[1]}"] if pool else [])


def _start(opts: dict[str, Any], database_url: str, queues: list[str], pool: str, concurrency: int, kind: str,
           extra: list[str] | None = None) -> None:
    from boundary.api.cli.options import log_through_celery
    from boundary.workers.celery_app import make_app

    log_through_celery()
    app = make_app(opts["broker_url"], database_url, visibility_timeout_s=opts["visibility_timeout"])
    hostname = opts["hostname"] or f"{kind}-{queues[0]}-{os.getpid()}@{socket.gethostname()}"
    app.worker_main([
        "worker", "--queues", ",".join(queues), "--pool", pool, "--concurrency", str(concurrency),
        "--loglevel", opts["loglevel"], "--hostname", hostname, "--without-gossip", "--without-mingle",
        "--without-heartbeat", *(extra or []),
    ])
