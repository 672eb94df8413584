"""Publishing batches to their queues, and checking that the broker answers."""

from __future__ import annotations

from collections.abc import Sequence

from celery import Celery

from boundary.api.batches import Queued
from boundary.api.db.session import redact_url
from boundary.api.errors import ConfigError
from boundary.workers.celery_app import GRADE_TASK, SAMPLE_TASK, SCORE_TASK


def check_broker(url: str, timeout_s: float = 5.0) -> None:
    """Raise ConfigError with one line unless the Redis broker at ``url`` answers a PING."""
    import redis

    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=timeout_s, socket_timeout=timeout_s)
        client.ping()
        client.close()
    except ValueError as exc:
        raise ConfigError(f"invalid broker URL '{redact_url(url)}': {exc}") from None
    except redis.RedisError as exc:
        raise ConfigError(f"cannot connect to broker {redact_url(url)}: {str(exc).splitlines()[0]}") from None


def publish(app: Celery, batches: Sequence[Queued]) -> None:
    """One message per batch, carrying its id, on the batch's queue."""
    if not batches:
        return
    with app.producer_or_acquire() as producer:
        for b in batches:
            task = {"sample": SAMPLE_TASK, "grade": GRADE_TASK, "score": SCORE_TASK}[b.kind]
            app.send_task(task, args=[b.batch_id], queue=b.queue, producer=producer)
