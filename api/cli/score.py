"""`boundary score` and `boundary worker score`: samples' log-likelihood under a model."""

from __future__ import annotations

import json
from typing import Any

import click

from boundary.api import defaults
from boundary.api.cli.fleet import _common_worker_options, _start, broker_option, worker
from boundary.api.cli.options import cache_dir_option, database_option, parse_engine_options
from boundary.api.config import Settings
from boundary.api.errors import ConfigError

EXAMPLES = """\b
Examples:
  boundary score --scorer qwen-base --experiment roles      # RL samples under the base model
  boundary score --scorer smollm2-135m --run 3 --run 4"""


@click.command(epilog=EXAMPLES)
@click.option("--scorer", required=True, help="A registered model's name, or an alias / folder / hub id.")
@click.option("--run", "run_ids", type=int, multiple=True, help="A run whose samples to score (repeatable).")
@click.option("--experiment", help="Score every run of this experiment.")
@click.option("--engine", "engine_name", default=defaults.ENGINE, show_default=True, help="vllm or hf.")
@click.option("-o", "--engine-option", "engine_options", multiple=True, metavar="KEY=VALUE")
@click.option("--batch-size", type=int, default=defaults.BATCH_SAMPLES, show_default=True, help="Samples per message.")
@click.option("--json", "as_json", is_flag=True)
@click.option("-q", "--quiet", is_flag=True, help="No progress bars.")
@broker_option(required=False)
@database_option
@cache_dir_option
def score(scorer: str, run_ids: tuple[int, ...], experiment: str | None, engine_name: str, engine_options: tuple[str, ...],
          batch_size: int, as_json: bool, quiet: bool, broker_url: str | None, database_url: str | None,
          cache_dir: str | None) -> None:
    """Score runs' samples under another model (the log-probability of each completion after
    its prompt), for the perplexity analysis of `boundary report`. With a broker, the work is
    queued on score.SCORER for `boundary worker score`; without one, it runs here."""
    from boundary.api.console import PhaseBars
    from boundary.api.db import Database
    from boundary.workers import fleet
    from boundary.workers.engines import check_engine_name, open_engine

    if not run_ids and not experiment:
        raise ConfigError("give --run ID (repeatable) or --experiment NAME")
    check_engine_name(engine_name)
    settings = Settings.build(database_url, None, cache_dir)
    db = Database.connect(settings.database_url)
    try:
        targets = list(run_ids) + (fleet.target_runs(db, experiment) if experiment else [])
        for rid in run_ids:
            fleet.target_runs(db, str(rid))
        scorer_id, spec = fleet.scorer_model(db, scorer)
        if broker_url:
            queued = fleet.queue_scores(db, broker_url, targets, scorer_id, batch_size)
            result = {"scorer": spec.name, "runs": targets, "batches": len(queued), "queue": f"score.{spec.name}"}
        else:
            engine = open_engine(engine_name, spec, parse_engine_options(engine_options), settings.cache_dir)
            with PhaseBars(enabled=not quiet and not as_json) as bars:
                scored = fleet.score_here(db, engine, scorer_id, targets, bars)
            result = {"scorer": spec.name, "runs": targets, "scored": scored}
    finally:
        db.dispose()
    if as_json:
        click.echo(json.dumps(result, indent=2))
    elif broker_url:
        click.echo(f"queued {result['batches']} batches on {result['queue']}: start `boundary worker score --model {spec.name}`")
    else:
        click.echo(f"scored {result['scored']} samples of run(s) {', '.join(map(str, targets))} under {spec.name}")


@worker.command("score", epilog="\b\nExample:\n  boundary worker score --model qwen-base")
@click.option("--model", "model_name", required=True, help="The scoring model's name, as registered.")
@click.option("--weights", envvar="BOUNDARY_WEIGHTS", help="Load the weights from this folder or hub id.")
@click.option("--engine", "engine_name", default=defaults.ENGINE, show_default=True, help="vllm or hf.")
@click.option("-o", "--engine-option", "engine_options", multiple=True, metavar="KEY=VALUE")
@cache_dir_option
@_common_worker_options
def worker_score(model_name: str, weights: str | None, engine_name: str, engine_options: tuple[str, ...],
                 cache_dir: str | None, **opts: Any) -> None:
    """Serve one model for scoring: load it once, then score the batches of score.MODEL."""
    from boundary.api.batches import score_queue
    from boundary.api.db import Database
    from boundary.workers import fleet, runtime
    from boundary.workers.engines import check_engine_name, open_engine
    from boundary.workers.queue import check_broker

    check_engine_name(engine_name)
    settings = Settings.build(opts["database_url"], None, cache_dir)
    check_broker(opts["broker_url"])
    db = Database.connect(settings.database_url, auto_migrate=False)
    try:
        spec = fleet.worker_model(db, model_name, weights)
    finally:
        db.dispose()
    options = parse_engine_options(engine_options)
    runtime.configure(runtime.WorkerConfig(
        database_url=settings.database_url, model_name=model_name, engine_name=engine_name,
        open_engine=lambda: open_engine(engine_name, spec, options, settings.cache_dir), max_attempts=opts["max_attempts"],
    ))
    runtime.engine()
    _start(opts, settings.database_url, [score_queue(model_name)], pool="solo", concurrency=1, kind="score")
