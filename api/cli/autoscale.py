"""`boundary autoscale run|show`: grow and shrink the fleet with its queues."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

import click

from boundary.api import autoscale_policy as policies
from boundary.api.cli.fleet import worker
from boundary.api.cli.options import Group, broker_option, database_option, lease_options
from boundary.api.errors import ConfigError

RUN_EXAMPLES = """\b
Examples:
  boundary autoscale run policy.yaml
  boundary autoscale run --queue sample.qwen-base=0:2:4 --queue grade=1:4:20 --dry-run --once
  boundary autoscale run policy.yaml --backend compose --compose-file docker-compose.yml
  boundary autoscale run policy.yaml --backend kubernetes --namespace boundary > scaledobjects.yaml

\b
A policy file:
  interval_s: 10
  scale_up_cooldown_s: 30
  scale_down_cooldown_s: 300
  queues:
    sample.qwen-base: {min: 0, max: 2, target_backlog: 4, args: [--weights, /models/qwen]}
    grade: {min: 1, max: 4, target_backlog: 20, args: [--autoscale, "8,2"]}"""


@click.group(cls=Group)
def autoscale() -> None:
    """Scale workers with the depth of their queues: more when work is queued, down to the
    floor when it is done. A worker told to stop finishes its current batch first.

    \b
    Example:
      boundary autoscale run policy.yaml
      boundary autoscale show
    """


@autoscale.command("run", epilog=RUN_EXAMPLES)
@click.argument("policy_file", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--queue", "queue_flags", multiple=True, metavar="NAME=MIN:MAX[:TARGET_BACKLOG]",
              help="A queue to scale (sample.MODEL, grade, sandbox); repeatable; adds to or overrides the file.")
@click.option("--backend", type=click.Choice(["local", "compose", "kubernetes"]), default="local", show_default=True,
              help="local: worker processes on this host; compose: `docker compose up --scale`; kubernetes: print "
                   "KEDA ScaledObjects and exit (KEDA then scales).")
@click.option("--interval", "interval_s", type=click.FloatRange(min=0.1), help="Seconds between looks at the queues.")
@click.option("--scale-up-cooldown", "scale_up_cooldown_s", type=click.FloatRange(min=0),
              help="Seconds after a change before a queue may grow again.")
@click.option("--scale-down-cooldown", "scale_down_cooldown_s", type=click.FloatRange(min=0),
              help="Seconds a queue must need fewer workers before they stop.")
@click.option("--drain-timeout", "drain_timeout_s", type=click.FloatRange(min=0),
              help="Seconds a stopping worker may take to finish its batch before it is killed.")
@click.option("--dry-run", is_flag=True, help="Print the decisions and what would be done; start or stop nothing.")
@click.option("--once", is_flag=True, help="One look at the queues, then exit (compose, or with --dry-run).")
@click.option("--log-dir", type=click.Path(file_okay=False, path_type=Path),
              help="local: where each worker's output goes (default: a new temporary folder).")
@click.option("--compose-file", default="docker-compose.yml", show_default=True, help="compose: the Compose file.")
@click.option("--compose-project", help="compose: the project name (default: Compose's own).")
@click.option("--compose-command", default="docker compose", show_default=True,
              help="compose: the Compose program (e.g. docker-compose).")
@click.option("--namespace", help="kubernetes: the namespace of the ScaledObjects and worker Deployments.")
@broker_option(required=True)
@database_option
@lease_options
def run(policy_file: Path | None, queue_flags: tuple[str, ...], backend: str, dry_run: bool, once: bool,
        **opts: Any) -> None:
    """Run the controller: every interval, read each queue's depth (messages waiting plus those
    workers hold), decide its workers from the policy, log the decision with its reason, and
    act through the backend. `boundary status` shows what it decided.

    Given a database (--database-url), it also reaps, as every worker does: it queues again
    the batches of workers whose lease ran out, and publishes again the batches the database
    says are queued but no queue holds. A dry run does not."""
    from boundary.api.batch_state import Lease

    lease = Lease(opts["lease_s"], opts["heartbeat_s"])
    policy = policies.build_policy(
        policies.load_policy(policy_file) if policy_file else None, queue_flags,
        **{k: opts[k] for k in ("interval_s", "scale_up_cooldown_s", "scale_down_cooldown_s", "drain_timeout_s")},
    )
    if backend == "kubernetes":
        from boundary.workers.autoscale import keda

        click.echo(keda.manifests(policy, opts["broker_url"], opts["namespace"]), nl=False)
        return
    if backend == "local" and once and not dry_run:
        raise ConfigError("--once with the local backend needs --dry-run: its workers stop when the controller does")
    if backend == "local":
        check_worker_args(policy)
    from boundary.workers.autoscale.controller import BackendOptions, run_controller

    where = BackendOptions(opts["database_url"], opts["log_dir"], opts["compose_file"], opts["compose_project"],
                           opts["compose_command"])
    run_controller(policy, backend, opts["broker_url"], where, dry_run=dry_run, once=once, lease=lease)


def check_worker_args(policy: policies.Policy) -> None:
    """Each queue's worker command line parses (a typo fails here, not in a restart loop)."""
    for queue in policy.queues:
        command = queue.worker_command()
        kind = command[1]
        try:
            worker.commands[kind].make_context(f"boundary worker {kind}", [*command[2:], "--broker-url", "redis://check"])
        except click.exceptions.Exit:
            raise ConfigError(f"queue '{queue.queue}': args must not ask for help or exit") from None
        except click.UsageError as exc:
            raise ConfigError(f"queue '{queue.queue}': `boundary {shlex.join(command)}` is not valid: "
                              f"{exc.format_message()}") from None


@autoscale.command("show", epilog="\b\nExamples:\n  boundary autoscale show\n  boundary autoscale show --json")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON, with each worker's pid and log file.")
@broker_option(required=True)
def show(as_json: bool, broker_url: str) -> None:
    """What the controllers run: per queue, its depth, current and desired workers, the last
    decision, and the worker processes of the local backend."""
    from boundary.api.render.console import queues_table, stdout
    from boundary.workers.autoscale.state import queue_views
    from boundary.workers.broker import check_broker, connect

    check_broker(broker_url)
    views = queue_views(connect(broker_url))
    if as_json:
        click.echo(json.dumps([{**v.__dict__, "depth": v.depth} for v in views], indent=2))
        return
    stdout().print(queues_table(views, workers=True))
