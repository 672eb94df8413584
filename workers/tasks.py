"""Celery tasks: thin, named, taking a batch id, idempotent. The work is in boundary.workers.delivery."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from celery import shared_task
from celery.app.task import Task

from boundary.api import defaults
from boundary.api.batch_state import Holder
from boundary.api.db.retry import is_transient
from boundary.workers import runtime
from boundary.workers.broker import publish
from boundary.workers.celery_app import GRADE_TASK, SAMPLE_TASK, SCORE_TASK
from boundary.workers.delivery import Retry, run_grade_batch, run_sample_batch, run_score_batch

T = TypeVar("T")


def _later(task: Task, exc: BaseException, countdown: float | None = None) -> Exception:
    """A retry of this message: after ``countdown``, or with backoff for a database outage.
    Database outages do not count against the batch's attempts (it was not claimed)."""
    if countdown is None:
        countdown = min(defaults.RETRY_BACKOFF_MAX_S, 2.0 ** min(task.request.retries, 6))
    return task.retry(exc=exc, countdown=countdown, max_retries=None)


def _deliver(task: Task, work: Callable[[], T]) -> T:
    """Run one delivery's work: a Retry becomes a Celery retry after its countdown, a database
    outage a retry with backoff; anything else fails the task."""
    try:
        return work()
    except Retry as exc:
        raise _later(task, exc, exc.countdown) from None
    except Exception as exc:
        if is_transient(exc):
            raise _later(task, exc) from None
        raise


def _holder(task: Task) -> Holder | None:
    """This delivery's claim on its batch: this process, the message's delivery tag, the lease."""
    lease = runtime.config().lease
    if lease is None:
        return None
    properties = getattr(task.request, "properties", None) or {}
    return Holder(runtime.identity(), properties.get("delivery_tag"), lease)


@shared_task(name=SAMPLE_TASK, bind=True, acks_late=True, max_retries=None)
def sample(self: Task, batch_id: int) -> None:
    config = runtime.config()
    follow = _deliver(self, lambda: run_sample_batch(
        runtime.database(), runtime.engine, batch_id,
        model_name=config.model_name or "", engine_name=config.engine_name or "", max_attempts=config.max_attempts,
        holder=_holder(self),
    ))
    publish(self.app, follow)


@shared_task(name=GRADE_TASK, bind=True, acks_late=True, max_retries=None)
def grade(self: Task, batch_id: int) -> None:
    config = runtime.config()
    _deliver(self, lambda: run_grade_batch(runtime.database(), runtime.grader, batch_id,
                                           max_attempts=config.max_attempts, holder=_holder(self)))


@shared_task(name=SCORE_TASK, bind=True, acks_late=True, max_retries=None)
def score(self: Task, batch_id: int) -> None:
    config = runtime.config()
    _deliver(self, lambda: run_score_batch(runtime.database(), runtime.engine, batch_id,
                                           model_name=config.model_name or "", max_attempts=config.max_attempts,
                                           holder=_holder(self)))
