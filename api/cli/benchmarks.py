"""`boundary benchmarks`: what is known, and storing a benchmark's problems."""

from __future__ import annotations

import json
from pathlib import Path

import click

from boundary.api.cli.options import Group, data_dir_option, database_option
from boundary.api.config import Settings


@click.group(cls=Group, invoke_without_command=True)
@data_dir_option
@click.pass_context
def benchmarks(ctx: click.Context, data_dir: str | None) -> None:
    """List the built-in benchmarks, or store one (`boundary benchmarks load NAME`).

    \b
    Example:
      boundary benchmarks --data-dir ../shared/data
    """
    if ctx.invoked_subcommand is None:
        ctx.invoke(benchmarks_list, data_dir=data_dir)


@benchmarks.command("list", epilog="\b\nExample:\n  boundary benchmarks list --data-dir ../shared/data --json")
@data_dir_option
@click.option("--json", "as_json", is_flag=True)
def benchmarks_list(data_dir: str | None = None, as_json: bool = False) -> None:
    """Built-in benchmarks and whether their data file is found."""
    from boundary.api.benchmarks import catalog

    rows = catalog.listing(Path(data_dir).expanduser() if data_dir else None)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for r in rows:
        missing = "" if r["found"] else " (not found: set --data-dir)"
        where = "generated" if r["file"] is None else r["file"] + missing
        click.echo(f"{r['name']:<14} {r['kind']:<5} {where:<45} {r['description']}")


@benchmarks.command("load", epilog="\b\nExample:\n  boundary benchmarks load humaneval --data-dir ../shared/data")
@click.argument("name")
@click.option("--field", "fields", multiple=True, metavar="ROLE=FIELD")
@click.option(
    "--kind", type=click.Choice(["math", "code"]), default="math", show_default=True, help="For a JSONL file."
)
@database_option
@data_dir_option
def benchmarks_load(
    name: str, fields: tuple[str, ...], kind: str, database_url: str | None, data_dir: str | None
) -> None:
    """Store a benchmark's problems in the database (a changed file becomes a new version)."""
    from boundary.api.benchmarks import load_benchmark
    from boundary.api.benchmarks.store import store_version
    from boundary.api.db import Database

    settings = Settings.build(database_url, data_dir, None)
    loaded = load_benchmark(name, settings.data_dir, fields=fields, kind=kind)  # type: ignore[arg-type]
    with Database.opened(settings.database_url) as database, database.session() as session:
        row, notice = store_version(session, loaded)
        click.echo(f"{row.name} v{row.version}: {row.num_problems} {row.kind} problems ({row.content_hash[:12]})")
    if notice:
        click.echo(f"note: {notice}", err=True)
