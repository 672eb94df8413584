"""The Celery application: Redis as the broker, the database as the source of truth; messages
carry batch ids, acknowledged late (docs/fleet.md)."""

from __future__ import annotations

from typing import Any

from celery import Celery
from celery.signals import worker_process_init, worker_process_shutdown

from boundary.api import defaults

SAMPLE_TASK = "boundary.sample"
GRADE_TASK = "boundary.grade"
SCORE_TASK = "boundary.score"


def make_app(
    broker_url: str,
    database_url: str,
    *,
    visibility_timeout_s: float = defaults.VISIBILITY_TIMEOUT_S,
    transport_options: dict[str, Any] | None = None,
) -> Celery:
    app = Celery("boundary", broker=broker_url, include=["boundary.workers.tasks"])
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        task_store_errors_even_if_ignored=False,
        task_default_queue="grade",
        task_create_missing_queues=True,
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,
        broker_transport_options={
            "visibility_timeout": visibility_timeout_s,
            # look for messages of dead workers every few seconds, not every ~100 s
            "unacked_restore_interval": min(10.0, max(1.0, visibility_timeout_s / 4)),
            "unacked_restore_throttle": 1,
            **(transport_options or {}),
        },
        worker_hijack_root_logger=False,
        worker_cancel_long_running_tasks_on_connection_loss=False,
        boundary_database_url=database_url,
    )
    return app


@worker_process_init.connect
def _fresh_process(**_: Any) -> None:
    """A forked pool child must not reuse the parent's database connections."""
    from boundary.workers import runtime

    runtime.after_fork()


@worker_process_shutdown.connect
def _process_exit(**_: Any) -> None:
    from boundary.workers import runtime

    runtime.shutdown()
