"""Where things live: the database, the benchmark data and the model cache.

Only the CLI reads the environment (through click's ``envvar``), and this module the cache's
``XDG_CACHE_HOME``; everything below them takes these values as arguments.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from boundary.api import defaults


def default_database_url() -> str:
    """The embedded SQLite file in the current directory."""
    return f"sqlite:///{Path.cwd() / defaults.DATABASE_FILE}"


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / defaults.CACHE_DIR_NAME


@dataclass(frozen=True)
class Settings:
    database_url: str
    data_dir: Path | None
    cache_dir: Path

    @classmethod
    def build(cls, database_url: str | None, data_dir: str | None, cache_dir: str | None) -> Settings:
        return cls(
            database_url=database_url or default_database_url(),
            data_dir=Path(data_dir).expanduser() if data_dir else None,
            cache_dir=Path(cache_dir).expanduser() if cache_dir else default_cache_dir(),
        )
