"""The click front end: each command parses options, makes one library call and prints.

This package is the composition root, the one place in ``api`` that imports ``workers``
(lazily, inside the commands that sample or grade), so the library can be used without vLLM,
Celery or a sandbox installed. One module per command group.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import click

from boundary.api import __version__
from boundary.api.cli.autoscale import autoscale
from boundary.api.cli.benchmarks import benchmarks
from boundary.api.cli.db import db
from boundary.api.cli.fleet import resume, status, submit, worker
from boundary.api.cli.options import Group
from boundary.api.cli.report import audit, export, report
from boundary.api.cli.run import run
from boundary.api.cli.score import score
from boundary.api.cli.verify import verify
from boundary.api.log import log_to_stderr


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="boundary")
def cli() -> None:
    """Measure the reasoning boundary of language models: draw many samples per problem,
    verify each one, store everything, and report pass@k and coverage.

    \b
    Example:
      boundary run --model smollm2-135m --benchmark arith --limit 20 -k 8
      boundary report
    """
    log_to_stderr()


for command in (run, submit, status, resume, report, audit, export, score, worker, autoscale, verify, db, benchmarks):
    cli.add_command(command)


def main(argv: Sequence[str] | None = None) -> None:
    cli.main(args=list(argv) if argv is not None else sys.argv[1:], prog_name="boundary")
