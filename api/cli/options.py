"""Options and the error translation shared by every command."""

from __future__ import annotations

import logging
import sys
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


def database_option(f: Callable) -> Callable:
    return click.option(
        "--database-url",
        envvar="BOUNDARY_DATABASE_URL",
        show_envvar=True,
        help=f"SQLAlchemy URL (sqlite:///... or postgresql+psycopg://...). Default: ./{defaults.DATABASE_FILE}",
    )(f)


def data_dir_option(f: Callable) -> Callable:
    return click.option(
        "--data-dir",
        envvar="BOUNDARY_DATA_DIR",
        show_envvar=True,
        type=click.Path(file_okay=False),
        help="Folder holding the benchmark files (gsm8k_test.jsonl, math500.jsonl, ...).",
    )(f)


def cache_dir_option(f: Callable) -> Callable:
    return click.option(
        "--cache-dir",
        envvar="BOUNDARY_CACHE_DIR",
        show_envvar=True,
        type=click.Path(file_okay=False),
        help="Where converted model weights are kept. Default: ~/.cache/boundary",
    )(f)


def sandbox_options(f: Callable) -> Callable:
    """``--sandbox`` and ``--unsafe-no-sandbox``: where generated code runs."""
    f = click.option(
        "--unsafe-no-sandbox", is_flag=True,
        help="Run generated code with no isolation at all (only where no sandbox can start).",
    )(f)
    return click.option(
        "--sandbox", type=click.Choice(["auto", "bwrap", "docker"]), default=defaults.SANDBOX, show_default=True,
        envvar="BOUNDARY_SANDBOX", show_envvar=True, help="Sandbox for generated code: bubblewrap, Docker, or the first that starts.",
    )(f)


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


class _StderrHandler(logging.Handler):
    """Writes to whatever ``sys.stderr`` is at the time (click's test runner swaps it)."""

    def emit(self, record: logging.LogRecord) -> None:
        sys.stderr.write(self.format(record) + "\n")


def log_to_stderr() -> None:
    """boundary's own log lines (loading a model, converting weights) on stderr."""
    logger = logging.getLogger("boundary")
    if not any(isinstance(h, _StderrHandler) for h in logger.handlers):
        logger.addHandler(_StderrHandler())
        logger.setLevel(logging.INFO)


def log_through_celery() -> None:
    """In a worker, Celery's log handler prints boundary's lines: drop the CLI's own."""
    logger = logging.getLogger("boundary")
    for handler in [h for h in logger.handlers if isinstance(h, _StderrHandler)]:
        logger.removeHandler(handler)
