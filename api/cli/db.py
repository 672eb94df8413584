"""`boundary db`: schema management."""

from __future__ import annotations

import click

from boundary.api.cli.options import Group, database_option
from boundary.api.config import Settings


@click.group(cls=Group)
def db() -> None:
    """Database schema management.

    \b
    Example:
      BOUNDARY_DATABASE_URL=postgresql+psycopg://localhost/boundary boundary db upgrade
    """


UPGRADE_EXAMPLE = "\b\nExample:\n  BOUNDARY_DATABASE_URL=postgresql+psycopg://localhost/boundary boundary db upgrade"


@db.command("upgrade", epilog=UPGRADE_EXAMPLE)
@click.option("--revision", default="head", show_default=True)
@database_option
def db_upgrade(revision: str, database_url: str | None) -> None:
    """Apply migrations (the embedded SQLite file is migrated automatically)."""
    from boundary.api.db import Database

    url = Settings.build(database_url, None, None).database_url
    with Database.opened(url, auto_migrate=False, check=False) as database:
        database.upgrade(revision)
        click.echo(f"{database.url} is at revision {database.revision()}")
