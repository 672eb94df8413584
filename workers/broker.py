"""The broker (Redis): connecting to it, checking that it answers, publishing batches to it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import redis

from boundary.api.batch_state import Queued
from boundary.api.db.session import redact_url
from boundary.api.errors import BrokerError, ConfigError

if TYPE_CHECKING:  # Celery loads only where something is published
    from celery import Celery


def connect(url: str, timeout_s: float = 5.0) -> redis.Redis:
    """A client for the broker at ``url``; it connects on first use."""
    try:
        return redis.Redis.from_url(url, socket_connect_timeout=timeout_s, socket_timeout=timeout_s)
    except ValueError as exc:
        raise ConfigError(f"invalid broker URL: {exc}") from None


def check_broker(url: str, timeout_s: float = 5.0) -> None:
    """Raise BrokerError with one line unless the Redis broker at ``url`` answers a PING (a URL
    that is not one is a ConfigError)."""
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=timeout_s, socket_timeout=timeout_s)
        client.ping()
        client.close()
    except ValueError as exc:
        raise ConfigError(f"invalid broker URL '{redact_url(url)}': {exc}") from None
    except redis.RedisError as exc:
        raise BrokerError(f"cannot connect to broker {redact_url(url)}: {str(exc).splitlines()[0]}") from None


def publish(app: Celery, batches: Sequence[Queued]) -> None:
    """One message per batch, carrying its id, on the batch's queue."""
    from boundary.workers.celery_app import GRADE_TASK, SAMPLE_TASK, SCORE_TASK

    if not batches:
        return
    tasks = {"sample": SAMPLE_TASK, "grade": GRADE_TASK, "score": SCORE_TASK}
    with app.producer_or_acquire() as producer:
        for b in batches:
            app.send_task(tasks[b.kind], args=[b.batch_id], queue=b.queue, producer=producer)


def publish_stored(broker_url: str, database_url: str, batches: Sequence[Queued], what: str) -> None:
    """Publish batches already stored in the database; a broker that went away since it was
    checked is a BrokerError that says how to queue them again."""
    from boundary.workers.celery_app import make_app

    try:
        publish(make_app(broker_url, database_url), batches)
    except Exception as exc:
        raise BrokerError(
            f"publishing to the broker failed ({str(exc).splitlines()[0]}); {what} is stored: "
            "run `boundary resume` once the broker is back"
        ) from None
