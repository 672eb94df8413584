"""`boundary score` and `boundary worker score`: samples' log-likelihood under a model."""

from __future__ import annotations

import json
from typing import Any

import click

from boundary.api import defaults
from boundary.api.cli.fleet import worker
from boundary.api.cli.options import (
    broker_option,
    cache_dir_option,
    database_option,
    parse_engine_options,
    worker_options,
    worker_settings,
)
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
def score(scorer: str, run_ids: tuple[int, ...], experiment: str | None, engine_name: str,
          engine_options: tuple[str, ...], batch_size: int, as_json: bool, quiet: bool, broker_url: str | None,
          database_url: str | None, cache_dir: str | None) -> None:
    """Score runs' samples under another model (the log-probability of each completion after
    its prompt), for the perplexity analysis of `boundary report`. With a broker, the work is
    queued on score.SCORER for `boundary worker score`; without one, it runs here."""
    from boundary.workers.engines import check_engine_name

    if not run_ids and not experiment:
        raise ConfigError("give --run ID (repeatable) or --experiment NAME")
    check_engine_name(engine_name)
    settings = Settings.build(database_url, None, cache_dir)
    if broker_url:
        from boundary.workers.submit import queue_scores

        queued = queue_scores(settings.database_url, broker_url, scorer, run_ids, experiment, batch_size)
        if as_json:
            click.echo(json.dumps(queued.to_dict(), indent=2))
        else:
            click.echo(f"queued {queued.batches} batches on {queued.queue}: "
                       f"start `boundary worker score --model {queued.scorer}`")
        return
    from boundary.api.render.console import PhaseBars
    from boundary.workers.embedded import score_here
    from boundary.workers.engines import open_engine

    options = parse_engine_options(engine_options)
    scored = score_here(settings.database_url, scorer, run_ids, experiment,
                        bars=PhaseBars(enabled=not quiet and not as_json),
                        open_engine=lambda spec: open_engine(engine_name, spec, options, settings.cache_dir))
    if as_json:
        click.echo(json.dumps(scored.to_dict(), indent=2))
    else:
        click.echo(f"scored {scored.scored} samples of run(s) {', '.join(map(str, scored.run_ids))} "
                   f"under {scored.scorer}")


@worker.command("score", epilog="\b\nExample:\n  boundary worker score --model qwen-base")
@click.option("--model", "model_name", required=True, help="The scoring model's name, as registered.")
@click.option("--weights", envvar="BOUNDARY_WEIGHTS", help="Load the weights from this folder or hub id.")
@click.option("--engine", "engine_name", default=defaults.ENGINE, show_default=True, help="vllm or hf.")
@click.option("-o", "--engine-option", "engine_options", multiple=True, metavar="KEY=VALUE")
@cache_dir_option
@worker_options
def worker_score(model_name: str, weights: str | None, engine_name: str, engine_options: tuple[str, ...],
                 cache_dir: str | None, **opts: Any) -> None:
    """Serve one model for scoring: load it once, then score the batches of score.MODEL."""
    from boundary.workers.startup import start_model_worker

    start_model_worker("score", worker_settings(opts), model_name, weights, engine_name,
                       parse_engine_options(engine_options), Settings.build(None, None, cache_dir).cache_dir)
