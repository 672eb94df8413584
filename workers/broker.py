"""The broker (Redis): connecting to it, checking that it answers (or waiting until it does),
publishing batches to it."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

import redis

from boundary.api.batch_state import Queued
from boundary.api.db.session import redact_url
from boundary.api.errors import BrokerError, ConfigError

if TYPE_CHECKING:  # Celery loads only where something is published
    from celery import Celery

log = logging.getLogger("boundary.broker")


def connect(url: str, timeout_s: float = 5.0) -> redis.Redis:
    """A client for the broker at ``url``; it connects on first use."""
    try:
        return redis.Redis.from_url(url, socket_connect_timeout=timeout_s, socket_timeout=timeout_s)
    except ValueError as exc:
        raise ConfigError(f"invalid broker URL '{redact_url(url)}': {exc}") from None


def check_broker(url: str, timeout_s: float = 5.0) -> None:
    """Raise BrokerError with one line unless the Redis broker at ``url`` answers a PING (a URL
    that is not one is a ConfigError)."""
    wait_for_broker(url, 0.0, timeout_s=timeout_s)


def is_unanswered(exc: redis.RedisError) -> bool:
    """The broker is not there yet (refused, reset, timed out, still loading its data), not
    one that answered with a refusal (a wrong password) or an error."""
    return isinstance(exc, (redis.ConnectionError, redis.TimeoutError)) and not isinstance(
        exc, redis.AuthenticationError)


def wait_for_broker(url: str, window_s: float, first_wait_s: float = 0.5, max_wait_s: float = 10.0,
                    timeout_s: float = 5.0) -> None:
    """``check_broker``, retried with backoff (one log line per retry) while the broker does not
    answer, until ``window_s`` has passed; then the BrokerError says how long it waited. A URL
    that is not one, or a broker that refuses the client, fails at once."""
    started, wait, retries = time.monotonic(), first_wait_s, 0
    while True:
        client = connect(url, timeout_s)
        try:
            client.ping()
            return
        except redis.RedisError as exc:
            reason, waited = str(exc).splitlines()[0], time.monotonic() - started
            if not is_unanswered(exc) or waited + wait > window_s:
                after = f" after waiting {waited:.1f}s" if retries else ""
                raise BrokerError(f"cannot connect to broker {redact_url(url)}{after}: {reason}") from None
        finally:
            client.close()
        log.warning("broker %s does not answer (%s); retrying in %.1fs", redact_url(url), reason[:200], wait)
        time.sleep(wait)
        wait, retries = min(wait * 2, max_wait_s), retries + 1


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
