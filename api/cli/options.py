"""Options and the error translation shared by every command."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import click
import yaml

from boundary.api import defaults
from boundary.api.errors import BoundaryError, ConfigError


class Group(click.Group):
    """Translates library errors into one-line messages (exit 1) and Ctrl-C into exit 130."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except BoundaryError as exc:
            raise click.ClickException(str(exc)) from None
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            ctx.exit(130)


database_option = click.option(
    "--database-url", envvar="BOUNDARY_DATABASE_URL", show_envvar=True,
    help=f"SQLAlchemy URL (sqlite:///... or postgresql+psycopg://...). Default: ./{defaults.DATABASE_FILE}",
)

data_dir_option = click.option(
    "--data-dir", envvar="BOUNDARY_DATA_DIR", show_envvar=True, type=click.Path(file_okay=False),
    help="Folder holding the benchmark files (gsm8k_test.jsonl, math500.jsonl, ...).",
)

cache_dir_option = click.option(
    "--cache-dir", envvar="BOUNDARY_CACHE_DIR", show_envvar=True, type=click.Path(file_okay=False),
    help="Where converted model weights are kept. Default: ~/.cache/boundary",
)


def sandbox_options(f: Callable) -> Callable:
    """``--sandbox`` and ``--unsafe-no-sandbox``: where generated code runs."""
    f = click.option(
        "--unsafe-no-sandbox", is_flag=True,
        help="Run generated code with no isolation at all (only where no sandbox can start).",
    )(f)
    return click.option(
        "--sandbox", type=click.Choice(["auto", "bwrap", "docker"]), default=defaults.SANDBOX, show_default=True,
        envvar="BOUNDARY_SANDBOX", show_envvar=True,
        help="Sandbox for generated code: bubblewrap, Docker, or the first that starts.",
    )(f)


SAMPLER_OPTION_HELP = ("alpha, proposal_temperature, block_tokens, mcmc_steps (power-mcmc), particles, "
                       "ess_threshold (power-smc), top_k, top_p (the proposal's truncation). "
                       "Defaults: docs/samplers.md.")
SAMPLER_HELP = "plain (one engine call per sample), power-mcmc or power-smc (sample p^alpha of the model)"


def sampler_options(f: Callable) -> Callable:
    """``--sampler`` and ``-S KEY=VALUE``: how each sample is drawn (boundary.api.samplers)."""
    f = click.option("-S", "--sampler-option", "sampler_option_pairs", multiple=True, metavar="KEY=VALUE",
                     help=f"A sampler option: {SAMPLER_OPTION_HELP}")(f)
    return click.option("--sampler", default="plain", show_default=True, help=f"{SAMPLER_HELP}.")(f)


def samplers_options(f: Callable) -> Callable:
    """``--sampler`` (repeatable: one set of runs per sampler) and ``-S KEY=VALUE``, applied to
    every sampler given that takes the key (``submit``)."""
    f = click.option("-S", "--sampler-option", "sampler_option_pairs", multiple=True, metavar="KEY=VALUE",
                     help="An option of every --sampler that takes it (one no sampler given takes is an error): "
                          f"{SAMPLER_OPTION_HELP}")(f)
    return click.option("--sampler", "samplers", multiple=True, metavar="NAME",
                        help=f"Repeatable, default plain: {SAMPLER_HELP}. Plain runs multiply by --temperature; "
                             "a power sampler is one run, at its proposal's temperature. "
                             "E.g. --sampler plain --sampler power-mcmc -S block_tokens=32.")(f)


def parse_engine_options(pairs: Sequence[str]) -> dict[str, Any]:
    """``KEY=VALUE`` pairs; values are read as YAML scalars (``true``, ``4096``, ``0.9``)."""
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"engine option must be KEY=VALUE, got '{pair}'")
        try:
            options[key] = yaml.safe_load(raw) if raw else ""
        except yaml.YAMLError:
            options[key] = raw
    return options



def broker_option(required: bool, note: str | None = None) -> Callable[[Callable], Callable]:
    def decorate(f: Callable) -> Callable:
        return click.option(
            "--broker-url",
            envvar="BOUNDARY_BROKER_URL",
            show_envvar=True,
            required=required,
            help="Redis URL of the queue, e.g. redis://localhost:6379/0."
            + (
                f" {note}" if note
                else "" if required
                else " Without one, `submit` runs the experiment in this process."
            ),
        )(f)

    return decorate


def lease_options(f: Callable) -> Callable:
    """``--lease`` and ``--heartbeat``: how workers hold their batches, and how often the
    fleet looks for the batches of dead workers and for lost messages."""
    f = click.option("--lease", "lease_s", type=float, default=defaults.LEASE_S, show_default=True,
                     envvar="BOUNDARY_LEASE", show_envvar=True,
                     help="Seconds a batch stays with its worker after the worker's last heartbeat; a dead worker's "
                          "batch is queued again this long after it stopped renewing.")(f)
    return click.option("--heartbeat", "heartbeat_s", type=float, default=defaults.HEARTBEAT_S, show_default=True,
                        envvar="BOUNDARY_HEARTBEAT", show_envvar=True,
                        help="Seconds between renewals of a lease (below --lease), and between looks for expired "
                             "leases and lost messages (batches queued in the database but in no queue).")(f)


def worker_options(f: Callable) -> Callable:
    """What every `boundary worker` command takes: broker, database, start-up, delivery and log settings."""
    f = click.option("--max-attempts", type=int, default=defaults.BATCH_MAX_ATTEMPTS, show_default=True,
                     help="Deliveries of a batch that store nothing (the worker died or the batch failed) before it "
                          "is marked failed.")(f)
    f = click.option("--visibility-timeout", type=float, default=defaults.VISIBILITY_TIMEOUT_S, show_default=True,
                     help="Seconds before an unacknowledged message goes to another worker; "
                          "above the longest batch.")(f)
    f = lease_options(f)
    f = click.option("--start-wait", type=click.FloatRange(min=0), default=defaults.START_WAIT_S, show_default=True,
                     envvar="BOUNDARY_START_WAIT", show_envvar=True,
                     help="Seconds to wait, retrying, for a broker or database that does not answer at start-up; "
                          "0: fail at once.")(f)
    f = click.option("--hostname", help="Worker name (default: kind-queue@host).")(f)
    f = click.option("--loglevel", default="INFO", show_default=True)(f)
    f = database_option(f)
    f = broker_option(required=True)(f)
    return f


def worker_settings(opts: dict[str, Any]) -> Any:
    """The ``WorkerOptions`` a worker starts with, from the options of ``worker_options``."""
    from boundary.api.config import Settings
    from boundary.workers.startup import WorkerOptions

    return WorkerOptions(opts["broker_url"], Settings.build(opts["database_url"], None, None).database_url,
                         opts["max_attempts"], opts["visibility_timeout"], opts["hostname"], opts["loglevel"],
                         lease_s=opts["lease_s"], heartbeat_s=opts["heartbeat_s"], start_wait_s=opts["start_wait"])
