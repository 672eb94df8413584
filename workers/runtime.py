"""What a worker process holds between tasks: its database, its loaded engine, its graders,
each created on first use and kept."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from boundary.api.batch_state import Lease
from boundary.api.db import Database
from boundary.api.db.session import make_engine
from boundary.api.types import Engine, Grader


@dataclass
class WorkerConfig:
    database_url: str
    model_name: str | None = None
    """Sampling workers: the model (as named in the database) this worker serves."""
    engine_name: str | None = None
    open_engine: Callable[..., Engine] | None = None
    """Loads the engine; called with ``tokens=True`` for a batch of a sampler beyond plain (the
    load options its token-level interface needs, boundary.workers.engines.TOKEN_OPTIONS)."""
    open_grader: Callable[[str], Grader] | None = None
    max_attempts: int = 3
    lease: Lease | None = None
    """How this worker holds the batches it takes (None: no lease, as in a direct call)."""


_config: WorkerConfig | None = None
_database: Database | None = None
_engine: Engine | None = None
_engine_tokens = False
_graders: dict[str, Grader] = {}


def configure(config: WorkerConfig) -> None:
    global _config
    shutdown()
    _config = config


def config() -> WorkerConfig:
    if _config is None:
        raise RuntimeError("this worker process was not configured (start it with `boundary worker ...`)")
    return _config


def identity() -> str:
    """This process, as a lease names its holder: ``host:pid`` (each pool child its own)."""
    return f"{socket.gethostname()}:{os.getpid()}"


def database() -> Database:
    global _database
    if _database is None:
        # No ping or schema check here: the worker checked both when it started, and a database
        # that is down now (a restart) must surface as a transient error of the task's own
        # queries, which wait and retry, not as a failed delivery.
        _database = Database(make_engine(config().database_url))
    return _database


def engine(tokens: bool = False) -> Engine:
    """This worker's engine, loaded on first use; ``tokens``: loaded for a sampler beyond plain
    (a vLLM engine is loaded again in the other mode when a batch needs it; see TOKEN_OPTIONS)."""
    global _engine, _engine_tokens
    if _engine is None or _engine_tokens != tokens:
        factory = config().open_engine
        if factory is None:
            raise RuntimeError("this worker does not sample: it has no engine")
        _engine = factory(tokens=True) if tokens else factory()
        _engine_tokens = tokens
    return _engine


def grader(kind: str) -> Grader:
    if kind not in _graders:
        factory = config().open_grader
        if factory is None:
            raise RuntimeError("this worker does not grade")
        _graders[kind] = factory(kind)
    return _graders[kind]


def after_fork() -> None:
    """In a new pool child: forget (without closing) the parent's connections and children."""
    global _database
    if _database is not None:
        _database.engine.dispose(close=False)
        _database = None
    _graders.clear()


def shutdown(*_: Any) -> None:
    global _database, _engine
    for g in list(_graders.values()):
        g.close()
    _graders.clear()
    if _engine is not None:
        _engine.close()
        _engine = None
    if _database is not None:
        _database.dispose()
        _database = None
