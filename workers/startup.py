"""Starting a worker process: check what it needs (broker, database, model, sandbox), configure
``boundary.workers.runtime``, and hand over to Celery's worker on the right queue and pool."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, OperationalError

from boundary.api import defaults
from boundary.api.autoscale_policy import parse_pool_autoscale
from boundary.api.batch_state import Lease
from boundary.api.db import Database
from boundary.api.db.retry import is_transient, with_retry
from boundary.api.db.session import make_engine, redact_url
from boundary.api.errors import ConfigError, DatabaseError
from boundary.api.log import log_through_celery
from boundary.api.models import worker_model
from boundary.api.queues import sample_queue, score_queue
from boundary.workers import runtime
from boundary.workers.broker import wait_for_broker
from boundary.workers.celery_app import make_app

MODEL_QUEUES = {"sample": sample_queue, "score": score_queue}
"""The queue a model worker of each kind serves, from the model's name."""


@dataclass(frozen=True)
class WorkerOptions:
    """What every worker is started with."""

    broker_url: str
    database_url: str
    max_attempts: int = defaults.BATCH_MAX_ATTEMPTS
    visibility_timeout_s: float = defaults.VISIBILITY_TIMEOUT_S
    hostname: str | None = None
    loglevel: str = "INFO"
    lease_s: float = defaults.LEASE_S
    heartbeat_s: float = defaults.HEARTBEAT_S
    start_wait_s: float = defaults.START_WAIT_S

    def lease(self) -> Lease:
        """The lease this worker holds its batches under (a ConfigError when it makes no sense)."""
        return Lease(self.lease_s, self.heartbeat_s)


def start_model_worker(kind: str, options: WorkerOptions, model_name: str, weights: str | None, engine_name: str,
                       engine_options: dict[str, Any], cache_dir: Path, wait_s: float = 0.0) -> None:
    """Serve one model (``kind``: ``sample`` or ``score``): load it once, then work the batches
    of its queue, one at a time. A model that cannot load stops the worker before it takes a
    message."""
    from boundary.workers.engines import check_engine_name, open_engine

    check_engine_name(engine_name)
    lease = options.lease()
    wait_for_services(options)
    with Database.opened(options.database_url, auto_migrate=False) as db:
        spec = worker_model(db, model_name, weights, wait_s=wait_s)
    runtime.configure(runtime.WorkerConfig(
        database_url=options.database_url, model_name=model_name, engine_name=engine_name,
        open_engine=lambda tokens=False: open_engine(engine_name, spec, engine_options, cache_dir, tokens=tokens),
        max_attempts=options.max_attempts, lease=lease,
    ))
    runtime.engine()
    _celery_worker(options, MODEL_QUEUES[kind](model_name), kind, pool="solo", concurrency=1)


def start_pool_worker(queue: str, options: WorkerOptions, concurrency: int, pool_autoscale: str | None = None,
                      concurrency_given: bool = False, sandbox: str = defaults.SANDBOX,
                      unsafe_no_sandbox: bool = False) -> None:
    """Grade from ``queue`` (``grade``: math answers, ``sandbox``: code answers) in a pool of
    ``concurrency`` processes, or one Celery grows and shrinks (``pool_autoscale``: MAX,MIN).
    A sandbox worker refuses to start where no sandbox can."""
    from boundary.workers.graders import grader_opener

    if concurrency < 1:
        raise ConfigError(f"--concurrency must be >= 1, got {concurrency}")
    pool = parse_pool_autoscale(pool_autoscale) if pool_autoscale else None
    if pool and concurrency_given:
        raise ConfigError("give --concurrency or --autoscale, not both")
    lease = options.lease()
    wait_for_services(options)
    with Database.opened(options.database_url, auto_migrate=False):
        pass  # reachable, and at the schema's head
    if queue == "sandbox":
        from boundary.workers.sandbox import open_sandbox

        open_sandbox(sandbox, unsafe_no_sandbox=unsafe_no_sandbox).close()  # refuse now, not on every batch
    runtime.configure(runtime.WorkerConfig(database_url=options.database_url,
                                           open_grader=grader_opener(sandbox, unsafe_no_sandbox),
                                           max_attempts=options.max_attempts, lease=lease))
    _celery_worker(options, queue, queue, pool="prefork", concurrency=pool[0] if pool else concurrency,
                   extra=["--autoscale", f"{pool[0]},{pool[1]}"] if pool else [])


REFUSED_LOGIN = ("authentication failed", "no pg_hba.conf entry", "no password supplied", "does not exist")
"""What PostgreSQL says when it answers but refuses this login (a wrong password, a role or a
database that does not exist): waiting will not change that."""


def wait_for_services(options: WorkerOptions) -> None:
    """Wait, up to ``options.start_wait_s`` in all, for the broker and then the database to answer
    (services started with the worker come up in any order), retrying with backoff. A malformed
    URL, or a database that refuses the login, fails at once; so does one that is not at the
    schema's head, when it is opened afterwards."""
    deadline = time.monotonic() + options.start_wait_s
    engine = make_engine(options.database_url)  # a malformed database URL fails before any wait
    try:
        wait_for_broker(options.broker_url, options.start_wait_s)
        _wait_for_database(engine, max(0.0, deadline - time.monotonic()))
    finally:
        engine.dispose()


def _wait_for_database(engine: Engine, window_s: float) -> None:
    started, attempts = time.monotonic(), 0

    def answers() -> None:
        nonlocal attempts
        attempts += 1
        try:
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except OperationalError as exc:
            if any(words in str(exc.orig) for words in REFUSED_LOGIN):
                raise DatabaseError(f"cannot connect to database {redact_url(engine.url)}: {_reason(exc)}") from None
            raise

    try:
        with_retry(answers, window_s)
    except Exception as exc:
        if not is_transient(exc):
            raise
        after = f" after waiting {time.monotonic() - started:.1f}s" if attempts > 1 else ""
        raise DatabaseError(f"cannot connect to database {redact_url(engine.url)}{after}: {_reason(exc)}") from None


def _reason(exc: DBAPIError) -> str:
    lines = [line.strip() for line in str(exc.orig or exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


def _celery_worker(options: WorkerOptions, queue: str, kind: str, pool: str, concurrency: int,
                   extra: Sequence[str] = ()) -> None:
    """Run Celery's worker on ``queue`` until it is told to stop; while it serves, a reaper
    thread in this (main) process takes back the batches of dead workers."""
    log_through_celery()
    _reap_while_serving(options)
    app = make_app(options.broker_url, options.database_url, visibility_timeout_s=options.visibility_timeout_s)
    hostname = options.hostname or f"{kind}-{queue}-{os.getpid()}@{socket.gethostname()}"
    app.worker_main([
        "worker", "--queues", queue, "--pool", pool, "--concurrency", str(concurrency),
        "--loglevel", options.loglevel, "--hostname", hostname, "--without-gossip", "--without-mingle",
        "--without-heartbeat", *extra,
    ])


def _reap_while_serving(options: WorkerOptions) -> None:
    """Start the reaper once the worker is ready (its pool's children forked), stop it at
    shutdown."""
    from celery.signals import worker_ready, worker_shutdown

    from boundary.workers.reaper import reap_in_background

    stops: list[Any] = []

    def ready(**_: Any) -> None:
        stops.append(reap_in_background(options.database_url, options.broker_url, options.lease(),
                                        runtime.identity()))

    def shutdown(**_: Any) -> None:
        while stops:
            stops.pop()()

    worker_ready.connect(ready, weak=False)
    worker_shutdown.connect(shutdown, weak=False)
