"""`boundary run`: one model on one benchmark, sampled, verified and reported in this process."""

from __future__ import annotations

import json
from typing import Any

import click

from boundary.api import defaults
from boundary.api.cli.options import (
    cache_dir_option,
    data_dir_option,
    database_option,
    parse_engine_options,
    sampler_options,
    sandbox_options,
)
from boundary.api.config import Settings
from boundary.api.requests import RunRequest, resolve, split_ids
from boundary.api.samplers import POWER_MAX_TOKENS, parse_sampler_options

EXAMPLES = """\b
Examples:
  boundary run --model smollm2-135m --benchmark arith --limit 20 -k 8
  BOUNDARY_DATA_DIR=../shared/data boundary run --model smollm2-135m --benchmark gsm8k --limit 20 -k 16
  boundary run --model ./ckpt/grpo-400 --model-name grpo-400 --role rlvr --benchmark math500 -k 128
  boundary run --model smollm2-135m --benchmark arith --limit 10 -k 4 --sampler power-mcmc \\
      -S block_tokens=32 -S mcmc_steps=2 --max-tokens 128"""


@click.command(epilog=EXAMPLES)
@click.option("--model", required=True, help="Alias (smollm2-135m), model folder, or hub id ORG/NAME.")
@click.option("--model-name", help="Name to store the model under (default: the alias, hub id or folder name).")
@click.option("--role", type=click.Choice(["base", "rlvr", "distilled", "instruct", "other"]), help="Model's role.")
@click.option("--family", help="Model family, e.g. qwen2.5-7b.")
@click.option("--benchmark", required=True,
              help="Built-in name (see `boundary benchmarks`), PATH.jsonl, or hf:DATASET_ID.")
@click.option("--field", "fields", multiple=True, metavar="ROLE=FIELD",
              help="Field mapping for a JSONL or dataset: id=, question=, answer=.")
@click.option("--kind", type=click.Choice(["math", "code"]), default="math", show_default=True,
              help="What a JSONL or dataset benchmark holds (built-in benchmarks know their kind).")
@click.option("--hf-split", default="test", show_default=True, help="Split of a hf: dataset.")
@click.option("--hf-config", help="Configuration of a hf: dataset.")
@click.option("--limit", type=int, help="Only the first N problems.")
@click.option("--problems", help="Only these problem ids, comma-separated.")
@click.option("-k", "--samples", "n", type=int, default=defaults.N_SAMPLES, show_default=True,
              help="Samples per problem.")
@click.option("--temperature", type=float,
              help=f"Sampling temperature of the plain sampler (default {defaults.TEMPERATURE:g}).")
@click.option("--top-p", type=float, help=f"Nucleus top-p of the plain sampler (default {defaults.TOP_P:g}).")
@click.option("--max-tokens", type=int,
              help=f"Longest completion (default {defaults.MAX_TOKENS}; {POWER_MAX_TOKENS} under a power sampler).")
@sampler_options
@click.option("--seed", type=int, default=defaults.SEED, show_default=True,
              help="Run seed; sample i of a problem uses a seed derived from it and i.")
@click.option("--template", help="Prompt template: qwen-boxed (default for math), boxed, chat, code-complete.")
@click.option("--engine", default=defaults.ENGINE, show_default=True, help="vllm, openai or hf (transformers).")
@click.option("-o", "--engine-option", "engine_options", multiple=True, metavar="KEY=VALUE",
              help="Passed to the engine, e.g. -o max_model_len=8192, -o deterministic=true.")
@click.option("--base-url", envvar="OPENAI_BASE_URL", help="Server URL for --engine openai, e.g. http://127.0.0.1:8000/v1.")
@click.option("--api-key", envvar="OPENAI_API_KEY", help="API key for --engine openai (never stored).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bars.")
@sandbox_options
@database_option
@data_dir_option
@cache_dir_option
def run(**opts: Any) -> None:
    """Sample, verify, store and report pass@k for one model on one benchmark.

    Running again reuses what is stored; a larger -k tops the run up, drawing only the
    missing samples, with the seeds a single larger run would have used.
    """
    from boundary.api.db import Database
    from boundary.api.render.console import PhaseBars, passk_table, stderr, stdout
    from boundary.workers.embedded import run_embedded
    from boundary.workers.engines import open_engine
    from boundary.workers.graders import grader_opener

    settings = Settings.build(opts["database_url"], opts["data_dir"], opts["cache_dir"])
    engine_options = parse_engine_options(opts["engine_options"])
    if opts["engine"] == "openai" and opts["base_url"]:
        engine_options = {"base_url": opts["base_url"], **engine_options}
    secret = {"api_key": opts["api_key"]} if opts["api_key"] else {}
    request = RunRequest(
        model=opts["model"], benchmark=opts["benchmark"], n=opts["n"], temperature=opts["temperature"],
        top_p=opts["top_p"], max_tokens=opts["max_tokens"], seed=opts["seed"], template=opts["template"],
        engine=opts["engine"], engine_options=engine_options, model_name=opts["model_name"], role=opts["role"],
        family=opts["family"], fields=opts["fields"], hf_split=opts["hf_split"], hf_config=opts["hf_config"],
        limit=opts["limit"], problems=split_ids(opts["problems"]), kind=opts["kind"],
        sampler=opts["sampler"], sampler_options=parse_sampler_options(opts["sampler_option_pairs"]),
    )
    spec, problems = resolve(request, settings.data_dir)
    with (
        Database.opened(settings.database_url) as db,
        PhaseBars(enabled=not opts["quiet"] and not opts["as_json"]) as bars,
    ):
        outcome = run_embedded(
            db,
            spec,
            problems,
            open_engine=lambda: open_engine(spec.engine, spec.model, {**engine_options, **secret}, settings.cache_dir,
                                            tokens=not spec.sampler.is_plain),
            open_grader=lambda: grader_opener(opts["sandbox"], opts["unsafe_no_sandbox"])(spec.benchmark.kind),
            progress=bars,
        )
    if outcome.plan.benchmark_notice:
        stderr.print(f"note: {outcome.plan.benchmark_notice}")
    if opts["as_json"]:
        click.echo(json.dumps({**outcome.report.to_dict(), "drawn": outcome.drawn, "graded_now": outcome.graded},
                              indent=2))
        return
    stderr.print(
        f"run {outcome.run_id}: drew {outcome.drawn} samples, graded {outcome.graded}; "
        f"{outcome.report.graded} graded samples over {outcome.report.problems} problems"
    )
    stdout().print(passk_table([outcome.report]))
